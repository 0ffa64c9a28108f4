package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/store"
)

// Spectral jobs run one at a time beside the analyses: they read every matrix
// several times, so two at once would only fight over the same cores and
// disk. They are queued in the store like analyses, so a page, the API and a
// restarted server all see the same state. On SQLite one loop per process
// claims them (workSpectra); on PostgreSQL they are River jobs (river.go),
// claimed by id like analyses, so a spectrum is computed once however many
// processes share the store.

func spectrumKey(owner string, rank int) string {
	return "spectrum:" + owner + ":" + strconv.Itoa(rank)
}

// QueueSpectrum asks for the spectra of a finished analysis at rank K and
// wakes the spectral worker (on River: enqueues the job). An existing job
// (queued, running or done) is returned as is.
func (r *Runner) QueueSpectrum(ctx context.Context, id string, rank int) (*store.Spectrum, error) {
	s, created, err := r.db.RequestSpectrum(ctx, id, rank)
	if err != nil {
		return nil, err
	}
	if r.opt.QueueURL != "" {
		// Queued but perhaps never enqueued (a server that died between
		// the two): the job is unique, so asking again costs nothing.
		if s.Status == store.StatusQueued {
			r.enqueueSpectrum(ctx, s.ResultID, s.Rank)
		}
		if created {
			r.notify(spectrumKey(s.ResultID, s.Rank))
		}
		return s, nil
	}
	if created {
		select {
		case r.spectraWake() <- struct{}{}:
		default:
		}
	}
	return s, nil
}

// CancelSpectrum stops a queued or running spectral job, in whichever
// process computes it.
func (r *Runner) CancelSpectrum(ctx context.Context, id string, rank int) error {
	owner, _, err := r.db.CancelSpectrum(ctx, id, rank)
	if err != nil {
		return err
	}
	r.cancelled(spectrumKey(owner, rank))
	return nil
}

// enqueueSpectrum makes a River job of one queued spectral job; a failure is
// logged, and the next sweep (river.go) enqueues it.
func (r *Runner) enqueueSpectrum(ctx context.Context, owner string, rank int) {
	client := r.riverClient()
	if client == nil {
		return // Run has not started the client yet; it sweeps when it does
	}
	if _, err := client.Insert(ctx, spectrumArgs{ID: owner, Rank: rank}, nil); err != nil && ctx.Err() == nil {
		r.opt.Log.Error("enqueue spectrum", "spectrum", owner, "rank", rank, "err", err)
	}
}

// spectraWake is the channel that tells the spectral worker a job was queued.
func (r *Runner) spectraWake() chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spectraCh == nil {
		r.spectraCh = make(chan struct{}, 1)
	}
	return r.spectraCh
}

// workSpectra claims and computes spectral jobs until ctx ends. Jobs a
// stopped server left running go back to the queue first; a job interrupted
// by ctx goes back too, to resume at the next start.
func (r *Runner) workSpectra(ctx context.Context) {
	if err := r.db.RecoverSpectra(ctx); err != nil && ctx.Err() == nil {
		r.opt.Log.Error("requeue interrupted spectra", "err", err)
	}
	wake := r.spectraWake()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for ctx.Err() == nil {
		s, req, err := r.db.ClaimNextSpectrum(ctx)
		switch {
		case errors.Is(err, store.ErrNotFound):
			select {
			case <-ctx.Done():
			case <-wake:
			case <-tick.C:
			}
			continue
		case err != nil:
			if ctx.Err() == nil {
				r.opt.Log.Error("claim spectrum", "err", err)
				time.Sleep(time.Second)
			}
			continue
		}
		r.runSpectrum(ctx, s, req)
	}
	if err := r.db.RecoverSpectra(context.WithoutCancel(ctx)); err != nil {
		r.opt.Log.Error("requeue interrupted spectra", "err", err)
	}
}

func (r *Runner) runSpectrum(parent context.Context, s *store.Spectrum, req store.AnalysisRequest) {
	key := spectrumKey(s.ResultID, s.Rank)
	ctx, cancel := context.WithCancel(parent)
	r.mu.Lock()
	r.running[key] = cancel
	r.mu.Unlock()
	defer func() {
		cancel()
		r.mu.Lock()
		delete(r.running, key)
		r.mu.Unlock()
		r.notify(key)
	}()
	log := r.opt.Log.With("spectrum", s.ResultID, "rank", s.Rank)
	start := time.Now()
	log.Info("spectrum started")
	r.notify(key)
	res, err := r.computeSpectrum(ctx, s, req)
	switch {
	case err == nil:
		secs := time.Since(start).Seconds()
		if err := r.db.FinishSpectrum(context.WithoutCancel(ctx), s.ResultID, s.Rank, res, secs); err != nil && !errors.Is(err, store.ErrConflict) {
			log.Error("store spectrum", "err", err)
		}
		log.Info("spectrum done", "seconds", secs)
	case parent.Err() != nil:
		log.Info("spectrum interrupted by shutdown; it resumes at the next start")
	case ctx.Err() != nil:
		log.Info("spectrum cancelled")
	default:
		log.Warn("spectrum failed", "err", err)
		if ferr := r.db.FailSpectrum(context.WithoutCancel(ctx), s.ResultID, s.Rank, err.Error()); ferr != nil && !errors.Is(ferr, store.ErrConflict) {
			log.Error("record spectrum failure", "err", ferr)
		}
	}
}

// computeSpectrum opens the analysis's sources again and computes the spectra,
// writing progress to the store; a job cancelled in the store stops at the
// next progress write.
func (r *Runner) computeSpectrum(ctx context.Context, s *store.Spectrum, req store.AnalysisRequest) (*spectral.Result, error) {
	opt := checkpoint.Options{Roots: r.opt.Roots, Limits: r.opt.Limits, Context: ctx}
	base, err := checkpoint.OpenSide(req.Base, opt)
	if err != nil {
		return nil, fmt.Errorf("base: %w", err)
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide(req.VLA, opt)
	if err != nil {
		return nil, fmt.Errorf("VLA: %w", err)
	}
	defer vla.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last time.Time
	return spectral.Compute(ctx, base, vla, spectral.Options{
		Rank:  s.Rank,
		Map:   req.Map,
		Exact: req.Exact, // the same ΔW as the analysis: at the VLA's precision unless it asked for exact
		// As many tensors at once as an analysis has cores: one tensor keeps
		// about one core busy (2 workers: 14.1 → 7.2 s on 2 cores at scale 0.1).
		Workers: r.opt.Threads,
		Progress: func(p spectral.Progress) {
			if time.Since(last) < r.opt.ProgressEvery && p.BytesDone < p.BytesTotal {
				return
			}
			last = time.Now()
			if err := r.db.UpdateSpectrumProgress(ctx, s.ResultID, s.Rank, p.BytesDone, p.BytesTotal, p.Tensor); err == nil {
				r.notify(spectrumKey(s.ResultID, s.Rank))
			} else if errors.Is(err, store.ErrConflict) {
				cancel() // cancelled (or requeued) in the store
			}
		},
	})
}
