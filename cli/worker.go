package cli

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// runWorker computes analyses and spectra from the shared PostgreSQL store's
// queue and serves no pages: any number of workers on any machines share the
// queue with the servers, and tell them of progress, ends and cancels through
// PostgreSQL notifications (jobs/notify.go). It stops at SIGTERM, handing its
// running jobs back.
func runWorker(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("worker", 0)
	db := fs.String("db", "", dbUsage+" (required)")
	roots := fs.List("root", "a folder whose checkpoints may be analysed (repeatable); name the servers' --data uploads folder too")
	workers := fs.Int("workers", 1, "analyses computed at once")
	threads := fs.Int("threads", max(1, runtime.GOMAXPROCS(0)), "cores one analysis computes on")
	timeout := fs.String("job-timeout", jobs.DefaultJobTimeout.String(), "the longest one analysis may run; a killed worker's analysis is retried once this has passed (give every server and worker the same: the elected leader's rescues)")
	progress := fs.String("progress-every", "250ms", "how often a running job writes its progress to the store and tells the servers (a cancel arrives at once, by notification, either way)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *db == "" {
		return fmt.Errorf("worker: give --db postgres://USER@HOST:PORT/DB (the servers' shared store)")
	}
	if !store.IsPostgresURL(*db) {
		return fmt.Errorf("worker: --db %q is not a PostgreSQL URL (postgres://USER@HOST:PORT/DB): workers share a PostgreSQL store", *db)
	}
	jobTimeout, err := time.ParseDuration(*timeout)
	if err != nil || jobTimeout <= 0 {
		return fmt.Errorf("worker: --job-timeout %q: give a duration such as 1h or 30m", *timeout)
	}
	progressEvery, err := time.ParseDuration(*progress)
	if err != nil || progressEvery <= 0 {
		return fmt.Errorf("worker: --progress-every %q: give a duration such as 250ms or 2s", *progress)
	}
	st, err := store.OpenURL(ctx, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))
	runner := jobs.New(st, jobs.Options{Roots: *roots, Workers: *workers, Threads: *threads, Log: log,
		QueueURL: *db, JobTimeout: jobTimeout, ProgressEvery: progressEvery})
	fmt.Fprintf(env.Stdout, "deltascope worker: %d at once on %s\n", *workers, st.Path())
	runner.Run(ctx)
	return nil
}
