// Package jobs runs analyses in the background: a bounded pool of workers claims
// queued analyses from the store, reads both sides, computes the divergence and
// stores the result in one transaction. Progress is written to the store as it
// goes, so any page or API client (and a restarted server) sees the same state.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/store"
)

// Options configure a Runner.
type Options struct {
	// Roots confines every checkpoint path a job may open.
	Roots []string
	// Workers is the number of analyses run at once (default 1: one analysis
	// already uses every core).
	Workers int
	// Threads is the number of cores one analysis computes on (0: all). A
	// server that also answers pages should leave one free.
	Threads int
	// ProgressEvery throttles progress writes (default 250 ms).
	ProgressEvery time.Duration
	Log           *slog.Logger
	// Limits bound what a checkpoint may declare.
	Limits checkpoint.Limits
	// QueueURL, the store's postgres:// URL, puts the analyses on River's
	// queue there, shared by every server and worker (river.go); "" keeps
	// this process's own queue, for SQLite.
	QueueURL string
	// JobTimeout bounds one analysis on River (default DefaultJobTimeout):
	// past it the analysis fails, and a job whose worker died is retried
	// once it has passed (River has no heartbeat to tell sooner).
	JobTimeout time.Duration
	// ServeOnly runs no jobs in this process (serve --workers 0): on River,
	// Run only enqueues and listens for the notices of the workers that do.
	// Without QueueURL nothing else could run them, so Run refuses it.
	ServeOnly bool
}

// Stats count what the runner did since it started.
type Stats struct {
	Running        int     `json:"running"`
	Done           int64   `json:"done"`
	Failed         int64   `json:"failed"`
	Cancelled      int64   `json:"cancelled"`
	Interrupted    int64   `json:"interrupted"`
	ComputeSeconds float64 `json:"compute_seconds"` // of analyses that finished
	LastSeconds    float64 `json:"last_seconds"`
}

// Runner owns the worker pool.
type Runner struct {
	db   *store.DB
	opt  Options
	wake chan struct{}

	statsMu sync.Mutex
	stats   Stats

	mu      sync.Mutex
	running map[string]context.CancelFunc
	// Listeners are told whenever an analysis's row changed (progress, end),
	// so that server-sent events can push without polling the database.
	listeners map[chan string]struct{}
	// spectraCh wakes the spectral worker (spectra.go) when a job is queued.
	spectraCh chan struct{}
	// river is the queue's client while Run runs on River (river.go).
	river *river.Client[pgx.Tx]

	// origin, out and outKick carry notices to the other processes sharing
	// a PostgreSQL store (notify.go).
	origin  string
	outMu   sync.Mutex
	out     map[string]struct{}
	outKick chan struct{}
}

// New makes a Runner; call Run to start it.
func New(db *store.DB, opt Options) *Runner {
	if opt.Workers <= 0 {
		opt.Workers = 1
	}
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = 250 * time.Millisecond
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.JobTimeout <= 0 {
		opt.JobTimeout = DefaultJobTimeout
	}
	return &Runner{db: db, opt: opt, wake: make(chan struct{}, 1), running: map[string]context.CancelFunc{}, listeners: map[chan string]struct{}{},
		origin: newOrigin(), out: map[string]struct{}{}, outKick: make(chan struct{}, 1)}
}

// Wake tells an idle worker that a job was queued (on River: enqueues it).
func (r *Runner) Wake() {
	if r.opt.QueueURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.enqueue(ctx)
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Subscribe returns a channel that receives the id of every analysis whose
// state changes, until cancel is called: changed by this process or, on a
// PostgreSQL store, by any other (notify.go). Slow readers miss events, never
// block the workers: they re-read the store anyway.
func (r *Runner) Subscribe() (<-chan string, func()) {
	ch := make(chan string, 16)
	r.mu.Lock()
	r.listeners[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.listeners, ch)
		r.mu.Unlock()
	}
}

// notify tells this process's listeners and the other processes that job
// key's row changed.
func (r *Runner) notify(key string) {
	r.notifyLocal(key)
	r.publish(verbChanged, key)
}

func (r *Runner) notifyLocal(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.listeners {
		select {
		case ch <- id:
		default:
		}
	}
}

// Cancel stops a queued or running analysis.
func (r *Runner) Cancel(ctx context.Context, id string) error {
	if _, err := r.db.Cancel(ctx, id); err != nil {
		return err
	}
	r.cancelled(id)
	return nil
}

// cancelled stops job key (an analysis id or a spectrumKey) once the store
// has it cancelled: here, and through the notice in whichever other process
// computes it; this process's listeners hear of it too.
func (r *Runner) cancelled(key string) {
	r.stop(key)
	r.notifyLocal(key)
	r.publish(verbCancel, key)
}

// stop cancels the computation of job key (an analysis id or a spectrumKey)
// in this process and reports whether one ran here.
func (r *Runner) stop(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cancel := r.running[key]; cancel != nil {
		cancel()
		return true
	}
	return false
}

// Running is the number of analyses being computed now.
func (r *Runner) Running() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.running)
}

// Stats returns the counters.
func (r *Runner) Stats() Stats {
	r.statsMu.Lock()
	s := r.stats
	r.statsMu.Unlock()
	s.Running = r.Running()
	return s
}

func (r *Runner) count(f func(*Stats)) {
	r.statsMu.Lock()
	f(&r.stats)
	r.statsMu.Unlock()
}

// Run works until ctx is cancelled. Analyses interrupted by that are put back in
// the queue, to resume at the next start: a SIGTERM never leaves a job "running".
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if r.opt.QueueURL != "" {
		// River, spectra included: its rescuer, not a requeue of everything
		// running, deals with interrupted jobs, since other processes' are
		// running too.
		if err := r.runRiver(ctx); err != nil {
			r.opt.Log.Error("job queue", "err", err)
		}
		return
	}
	if r.opt.ServeOnly {
		r.opt.Log.Error("jobs: ServeOnly needs a shared queue (QueueURL): nothing would run the jobs")
		return
	}
	for range r.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.workSpectra(ctx)
	}()
	wg.Wait()
	// Our jobs stopped with ctx; requeue them for the next start.
	if n, err := r.db.RecoverInterrupted(context.WithoutCancel(ctx), true); err != nil {
		r.opt.Log.Error("requeue interrupted analyses", "err", err)
	} else if n > 0 {
		r.opt.Log.Info("analyses requeued for the next start", "count", n)
	}
}

func (r *Runner) work(ctx context.Context) {
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		a, err := r.db.ClaimNext(ctx)
		switch {
		case errors.Is(err, store.ErrNotFound):
			select {
			case <-ctx.Done():
			case <-r.wake:
			case <-tick.C:
			}
			continue
		case err != nil:
			if ctx.Err() == nil {
				r.opt.Log.Error("claim analysis", "err", err)
				time.Sleep(time.Second)
			}
			continue
		}
		r.runOne(ctx, a)
	}
}

func (r *Runner) runOne(parent context.Context, a *store.Analysis) {
	ctx, cancel := context.WithCancel(parent)
	r.mu.Lock()
	r.running[a.ID] = cancel
	r.mu.Unlock()
	defer func() {
		cancel()
		r.mu.Lock()
		delete(r.running, a.ID)
		r.mu.Unlock()
		r.notify(a.ID)
	}()
	log := r.opt.Log.With("analysis", a.ID)
	start := time.Now()
	log.Info("analysis started", "base", a.Request.Base, "vla", a.Request.VLA)
	r.notify(a.ID)
	err := r.compute(ctx, a)
	switch {
	case err == nil:
		secs := time.Since(start).Seconds()
		log.Info("analysis done", "seconds", secs)
		r.count(func(s *Stats) { s.Done++; s.ComputeSeconds += secs; s.LastSeconds = secs })
	case parent.Err() != nil:
		log.Info("analysis interrupted by shutdown; it resumes at the next start")
		r.count(func(s *Stats) { s.Interrupted++ })
	case ctx.Err() != nil:
		log.Info("analysis cancelled")
		r.count(func(s *Stats) { s.Cancelled++ })
	default:
		log.Warn("analysis failed", "err", err)
		r.count(func(s *Stats) { s.Failed++ })
		// Nothing aligned: the failure carries the rules that would fix it.
		fail := func(c context.Context) error { return r.db.Fail(c, a.ID, err.Error()) }
		if na, ok := errors.AsType[*analysis.NoAlignmentError](err); ok {
			fail = func(c context.Context) error {
				return r.db.FailAdvised(c, a.ID, err.Error(), store.Advice{Suggestions: na.Suggestions, Unmatched: na.Unmatched})
			}
		}
		if ferr := fail(context.WithoutCancel(ctx)); ferr != nil && !errors.Is(ferr, store.ErrConflict) {
			log.Error("record failure", "err", ferr)
		}
	}
}

// compute reads both sides and stores the result.
func (r *Runner) compute(ctx context.Context, a *store.Analysis) error {
	opt := checkpoint.Options{Roots: r.opt.Roots, Limits: r.opt.Limits, Context: ctx}
	base, err := checkpoint.OpenSide(a.Request.Base, opt)
	if err != nil {
		return fmt.Errorf("base: %w", err)
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide(a.Request.VLA, opt)
	if err != nil {
		return fmt.Errorf("VLA: %w", err)
	}
	defer vla.Close()
	var last time.Time
	res, err := analysis.Analyze(ctx, base, vla, analysis.Options{
		Map:         a.Request.Map,
		Exact:       a.Request.Exact,
		Geometry:    a.Request.Geometry,
		Fingerprint: true,
		Workers:     r.opt.Threads,
		Progress: func(p analysis.Progress) {
			if time.Since(last) < r.opt.ProgressEvery && p.BytesDone < p.BytesTotal {
				return
			}
			last = time.Now()
			if err := r.db.UpdateProgress(ctx, a.ID, p.BytesDone, p.BytesTotal, p.Tensor); err == nil {
				r.notify(a.ID)
			} else if store.ErrorCode(err) == store.ECONFLICT {
				r.stop(a.ID) // cancelled by another process sharing the store
			}
		},
	})
	if err != nil {
		return err
	}
	return r.db.Finish(ctx, a.ID, Record(base, res.BaseFingerprint), Record(vla, res.VLAFingerprint), res)
}
