package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/deltascope/deltascope/store"
)

// On a PostgreSQL store (Options.QueueURL) analyses are River jobs, so that any
// number of servers and `deltascope worker` processes on any machines share
// one queue. A job carries only the analysis id; the analysis row stays the
// truth the pages read. A worker killed mid-analysis never finishes its job:
// River's rescuer makes it available again once Options.JobTimeout has passed
// since it started, and the next worker takes the still-running analysis over (store.ClaimID). Its
// result is stored in one transaction by whichever worker finishes, and
// Finish refuses an analysis that is no longer running, so each analysis is
// done once. Spectral jobs (spectrumArgs) work the same way on a queue of
// their own that each process works one job at a time. SQLite keeps the
// in-process runner (runner.go): one process owns the file, and River's SQLite
// driver would add nothing but a second queue.

// DefaultJobTimeout is the longest one analysis may run on River. River
// rescues a job only after its timeout (a live worker could still be on it),
// so this is also how long a dead worker's analysis waits to be retried.
const DefaultJobTimeout = time.Hour

// analysisArgs is the River job of one analysis.
type analysisArgs struct {
	ID string `json:"id"`
}

func (analysisArgs) Kind() string { return "deltascope_analysis" }

// InsertOpts makes the job unique per analysis: every server's Wake may
// enqueue the same queued analysis, and only one job results.
func (analysisArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: store.MaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

type analysisWorker struct {
	river.WorkerDefaults[analysisArgs]
	r *Runner
}

// Work claims the analysis and computes it. A shutdown puts the analysis back
// in the queue and fails the job, which River retries on another worker.
func (w *analysisWorker) Work(ctx context.Context, job *river.Job[analysisArgs]) error {
	a, err := w.r.db.ClaimID(ctx, job.Args.ID)
	if c := store.ErrorCode(err); c == store.ECONFLICT || c == store.ENOTFOUND {
		return nil // done, failed, cancelled or deleted meanwhile: nothing to do
	}
	if err != nil {
		return err
	}
	w.r.runOne(ctx, a)
	return w.r.afterJob(ctx, a.ID, "analysis "+a.ID,
		func(c context.Context, msg string) error { return w.r.db.Fail(c, a.ID, msg) },
		func(c context.Context) error { return w.r.db.Requeue(c, a.ID) })
}

// afterJob ends River's side of job key (described as what) once its run
// returned: past the job timeout the job fails with that reason and River is
// told it succeeded (a retry would only time out again); stopped by a
// shutdown it goes back to the queue and River is told it failed, so that it
// retries it on another worker. Either way the other processes hear of it.
func (r *Runner) afterJob(ctx context.Context, key, what string, fail func(context.Context, string) error, requeue func(context.Context) error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		defer r.notify(key)
		msg := fmt.Sprintf("took longer than the job timeout (%s)", r.opt.JobTimeout)
		if err := fail(context.WithoutCancel(ctx), msg); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		return nil
	}
	if ctx.Err() != nil {
		if err := requeue(context.WithoutCancel(ctx)); err != nil {
			r.opt.Log.Error("requeue interrupted job", "job", what, "err", err)
		}
		r.notify(key)
		return fmt.Errorf("%s interrupted: %w", what, ctx.Err())
	}
	return nil
}

// spectraQueue is the River queue of spectral jobs: every process works it
// one job at a time (see spectra.go for why).
const spectraQueue = "deltascope_spectra"

// spectrumArgs is the River job of one spectral job: ID is the analysis that
// owns the result rows (store.Spectrum.ResultID).
type spectrumArgs struct {
	ID   string `json:"id"`
	Rank int    `json:"rank"`
}

func (spectrumArgs) Kind() string { return "deltascope_spectrum" }

// unfinished are the job states in which a spectrum's job is unique. Unlike
// an analysis, a spectrum that failed or was cancelled may be asked for again
// under the same key, and its completed job must not stand in the way.
var unfinished = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRunning, rivertype.JobStateRetryable, rivertype.JobStateScheduled}

func (spectrumArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: spectraQueue, MaxAttempts: store.MaxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: unfinished}}
}

type spectrumWorker struct {
	river.WorkerDefaults[spectrumArgs]
	r *Runner
}

// Work claims the spectral job and computes it, as analysisWorker.Work does
// an analysis: the claim in the store is what makes it run once.
func (w *spectrumWorker) Work(ctx context.Context, job *river.Job[spectrumArgs]) error {
	owner, rank := job.Args.ID, job.Args.Rank
	s, req, err := w.r.db.ClaimSpectrum(ctx, owner, rank)
	if c := store.ErrorCode(err); c == store.ECONFLICT || c == store.ENOTFOUND {
		return nil // done, failed, cancelled or deleted meanwhile
	}
	if err != nil {
		return err
	}
	w.r.runSpectrum(ctx, s, req)
	return w.r.afterJob(ctx, spectrumKey(owner, rank), fmt.Sprintf("spectrum of %s at rank %d", owner, rank),
		func(c context.Context, msg string) error { return w.r.db.FailSpectrum(c, owner, rank, msg) },
		func(c context.Context) error { return w.r.db.RequeueSpectrum(c, owner, rank) })
}

// runRiver is Run on a PostgreSQL store: a River client works the queue until
// ctx ends, then cancels its jobs (they return to the queue).
func (r *Runner) runRiver(ctx context.Context) error {
	pool, err := pgxpool.New(ctx, r.opt.QueueURL)
	if err != nil {
		return fmt.Errorf("jobs: queue: %w", err)
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	if err := migrateRiver(ctx, pool, driver); err != nil {
		return err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &analysisWorker{r: r})
	river.AddWorker(workers, &spectrumWorker{r: r})
	cfg := &river.Config{
		Workers:              workers,
		JobTimeout:           r.opt.JobTimeout,
		RescueStuckJobsAfter: r.opt.JobTimeout + time.Second,
		Logger:               r.opt.Log,
	}
	if !r.opt.ServeOnly {
		// Without queues the client only inserts (serve --workers 0): it
		// neither works jobs nor runs for leader, so the workers' leader
		// does the rescuing.
		cfg.Queues = map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: r.opt.Workers},
			spectraQueue:       {MaxWorkers: 1},
		}
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return fmt.Errorf("jobs: queue: %w", err)
	}
	r.mu.Lock()
	r.river = client
	r.mu.Unlock()

	// Notices to and from the other processes (notify.go). The sender
	// outlives the client, to send the requeues of jobs the stop interrupts.
	var notices sync.WaitGroup
	sendCtx, stopSending := context.WithCancel(context.WithoutCancel(ctx))
	notices.Go(func() { r.sendNotices(sendCtx, pool) })
	notices.Go(func() { r.listen(ctx, r.opt.QueueURL) })
	defer func() {
		stopSending()
		notices.Wait()
	}()

	if r.opt.ServeOnly {
		r.opt.Log.Info("job queue started; this process runs no jobs")
	} else {
		if err := client.Start(ctx); err != nil {
			return fmt.Errorf("jobs: queue: %w", err)
		}
		r.opt.Log.Info("job queue started", "workers", r.opt.Workers)
	}
	// Analyses queued before any server enqueued them (a server that died
	// between the two, a database from the embedded default): a slow sweep,
	// far from a polling loop: River delivers the jobs themselves.
	// The same sweep fails what River discarded (discarded.go).
	sweep := time.NewTicker(30 * time.Second)
	defer sweep.Stop()
	r.enqueue(ctx)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-sweep.C:
			r.enqueue(ctx)
			if _, err := r.failDiscarded(ctx, client); err != nil && ctx.Err() == nil {
				r.opt.Log.Error("fail discarded jobs", "err", err)
			}
		}
	}
	if r.opt.ServeOnly {
		return nil
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return client.StopAndCancel(stopCtx)
}

// riverMigrationLock keeps servers starting together from migrating River's
// tables at once ("dsc" + "rivr" in ASCII).
const riverMigrationLock = 0x647363_72697672

func migrateRiver(ctx context.Context, pool *pgxpool.Pool, driver *riverpgxv5.Driver) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("jobs: queue: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(riverMigrationLock)); err != nil {
		return fmt.Errorf("jobs: queue: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(riverMigrationLock))
	m, err := rivermigrate.New(driver, nil)
	if err == nil {
		_, err = m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	}
	if err != nil {
		return fmt.Errorf("jobs: migrate the queue's tables: %w", err)
	}
	return nil
}

// riverClient is the queue's client, or nil before Run has made it.
func (r *Runner) riverClient() *river.Client[pgx.Tx] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.river
}

// enqueue makes a River job of every queued analysis and spectral job
// (unique per job: one already enqueued is left as it is).
func (r *Runner) enqueue(ctx context.Context) {
	client := r.riverClient()
	if client == nil {
		return // Run has not started the client yet; it sweeps when it does
	}
	ids, err := r.db.QueuedIDs(ctx)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.opt.Log.Error("enqueue analyses", "err", err)
		}
		return
	}
	spectra, err := r.db.QueuedSpectra(ctx)
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			r.opt.Log.Error("enqueue spectra", "err", err)
		}
		return
	}
	if len(ids)+len(spectra) == 0 {
		return
	}
	params := make([]river.InsertManyParams, 0, len(ids)+len(spectra))
	for _, id := range ids {
		params = append(params, river.InsertManyParams{Args: analysisArgs{ID: id}})
	}
	for _, k := range spectra {
		params = append(params, river.InsertManyParams{Args: spectrumArgs{ID: k.Owner, Rank: k.Rank}})
	}
	if _, err := client.InsertMany(ctx, params); err != nil && ctx.Err() == nil {
		r.opt.Log.Error("enqueue jobs", "err", err)
	}
}
