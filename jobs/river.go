package jobs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

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
// done once. SQLite keeps the in-process runner (runner.go): one process owns
// the file, and River's SQLite driver would add nothing but a second queue.

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
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		msg := fmt.Sprintf("took longer than the job timeout (%s)", w.r.opt.JobTimeout)
		if err := w.r.db.Fail(context.WithoutCancel(ctx), a.ID, msg); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		return nil
	}
	if ctx.Err() != nil {
		if err := w.r.db.Requeue(context.WithoutCancel(ctx), a.ID); err != nil {
			w.r.opt.Log.Error("requeue interrupted analysis", "analysis", a.ID, "err", err)
		}
		return fmt.Errorf("analysis %s interrupted: %w", a.ID, ctx.Err())
	}
	return nil
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
	client, err := river.NewClient(driver, &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: r.opt.Workers}},
		Workers:              workers,
		JobTimeout:           r.opt.JobTimeout,
		RescueStuckJobsAfter: r.opt.JobTimeout + time.Second,
		Logger:               r.opt.Log,
	})
	if err != nil {
		return fmt.Errorf("jobs: queue: %w", err)
	}
	r.mu.Lock()
	r.river = client
	r.mu.Unlock()
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: queue: %w", err)
	}
	// Analyses queued before any server enqueued them (a server that died
	// between the two, a database from the embedded default): a slow sweep,
	// far from a polling loop: River delivers the jobs themselves.
	sweep := time.NewTicker(30 * time.Second)
	defer sweep.Stop()
	r.enqueue(ctx)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-sweep.C:
			r.enqueue(ctx)
		}
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

// enqueue makes a River job of every queued analysis (unique per analysis:
// one already enqueued is left as it is).
func (r *Runner) enqueue(ctx context.Context) {
	r.mu.Lock()
	client := r.river
	r.mu.Unlock()
	if client == nil {
		return // Run has not started the client yet; it sweeps when it does
	}
	ids, err := r.db.QueuedIDs(ctx)
	if err != nil || len(ids) == 0 {
		if err != nil && !errors.Is(err, context.Canceled) {
			r.opt.Log.Error("enqueue analyses", "err", err)
		}
		return
	}
	params := make([]river.InsertManyParams, len(ids))
	for i, id := range ids {
		params[i] = river.InsertManyParams{Args: analysisArgs{ID: id}}
	}
	if _, err := client.InsertMany(ctx, params); err != nil && ctx.Err() == nil {
		r.opt.Log.Error("enqueue analyses", "err", err)
	}
}
