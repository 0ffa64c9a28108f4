package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/handlers"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// shutdownGrace is how long in-flight requests get after SIGTERM.
const shutdownGrace = 10 * time.Second

func runServe(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet("serve", 0)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (loopback unless you mean it)")
	sf := addStoreFlags(fs, "deltascope-data", "folder for the database, uploads and the demo (with --db: uploads and the demo)")
	sf.filesToo = true
	roots := fs.List("root", "a folder whose checkpoints may be analysed by server path, or s3://BUCKET/PREFIX or hf://ORG for remote sources (repeatable)")
	uploadStore := fs.String("uploads", "", "s3://BUCKET/PREFIX: keep uploads there (tusd's S3 store), so that any server behind one address resumes them and any worker reads them (default: the folder uploads in --data)")
	auth := addAuthFlags(fs)
	workers := fs.Int("workers", 1, "analyses computed at once; 0 (with --db): none, only pages and the API, while workers compute")
	threads := fs.Int("threads", max(1, runtime.GOMAXPROCS(0)-1), "cores one analysis computes on (default: all but one, so pages stay responsive)")
	interrupted := fs.String("interrupted", "resume", "what to do with analyses a crash interrupted: resume or fail")
	jobTimeout := fs.String("job-timeout", jobs.DefaultJobTimeout.String(), "with --db: the longest one analysis may run; a killed worker's analysis is retried once this has passed (give every server and worker the same)")
	noDemo := fs.Bool("no-demo", "do not create the demo analysis on first start")
	limits := addLimitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := limits.config()
	if err != nil {
		return err
	}
	if err := auth.apply(*addr, &cfg); err != nil { // auth none listens on loopback only
		return err
	}
	if *interrupted != "resume" && *interrupted != "fail" {
		return fmt.Errorf("serve: --interrupted must be resume or fail")
	}
	// On SQLite nothing but this process could run the jobs: with none,
	// every analysis would wait forever.
	if *workers < 0 || *workers == 0 && *sf.db == "" {
		return fmt.Errorf("serve: --workers %d: give 1 or more, or 0 with --db postgres://... and workers (deltascope worker --db) to run the jobs", *workers)
	}
	timeout, err := time.ParseDuration(*jobTimeout)
	if err != nil || timeout <= 0 {
		return fmt.Errorf("serve: --job-timeout %q: give a duration such as 1h or 30m", *jobTimeout)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, nil))

	db, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	if env.PasswordCost != 0 { // accounts created through the API hash at the env's cost too
		if err := db.SetPasswordCost(env.PasswordCost); err != nil {
			return err
		}
	}
	auth.warn(ctx, db, *addr, log)
	if db.IsPostgres() {
		// A shared store: analyses running now may be other servers' or
		// workers'. River's rescuer retries those whose worker died.
	} else if n, err := db.RecoverInterrupted(ctx, *interrupted == "resume"); err != nil {
		return err
	} else if n > 0 {
		log.Info("analyses interrupted by the last stop", "count", n, "action", *interrupted)
	}
	demoDir, uploadDir := filepath.Join(sf.dir(), "demo"), filepath.Join(sf.dir(), "uploads")
	allowed := append([]string{uploadDir, demoDir}, *roots...)
	if *uploadStore != "" {
		if err := handlers.CheckUploadStore(ctx, *uploadStore); err != nil {
			return fmt.Errorf("serve: %v", err)
		}
		// The jobs read finished uploads from the bucket (the pages never list
		// it); servers sharing a PostgreSQL store lock uploads there.
		allowed, cfg.UploadStore, cfg.UploadLockDB = append(allowed, *uploadStore), *uploadStore, *sf.db
	}
	runner := jobs.New(db, jobs.Options{Roots: allowed, Workers: *workers, Threads: *threads, Log: log, Limits: cfg.Limits, QueueURL: *sf.db, JobTimeout: timeout,
		ServeOnly: *workers == 0})
	cfg.Roots, cfg.UploadDir, cfg.Log = allowed, uploadDir, log
	srv := handlers.New(db, runner, cfg)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %v", err)
	}
	httpSrv := srv.HTTPServer(srv.Routes()) // timeouts, and uploads confirm what arrived at shutdown
	fmt.Fprintf(env.Stdout, "deltascope serving on http://%s\n", ln.Addr())

	runCtx, stopRunner := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); runner.Run(runCtx) }()
	go func() { defer wg.Done(); srv.SweepUploadsEvery(runCtx, time.Hour) }()
	serveErr := make(chan error, 1)
	go func() { defer wg.Done(); serveErr <- httpSrv.Serve(ln) }()
	if !*noDemo {
		// The demo writes to the database: like the runner it is waited for
		// before the deferred db.Close, and runCtx stops its generation.
		wg.Go(func() { ensureDemo(runCtx, db, runner, demoDir, log) })
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		stopRunner()
		wg.Wait() // nothing may use the database once it closes
		return fmt.Errorf("serve: %v", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := httpSrv.Shutdown(sctx); err != nil {
		log.Warn("requests still running at shutdown", "err", err)
	}
	stopRunner()
	wg.Wait()
	return nil
}

// generateDemo makes the demo pair; tests slow it down to widen the window in
// which serve could return before the demo goroutine ends.
var generateDemo = synth.Generate

// ensureDemo gives a newcomer real heatmaps at once: on a database with no
// analyses it generates a small OpenVLA-shaped pair (full layer and module
// structure, widths scaled down) and queues its analysis.
func ensureDemo(ctx context.Context, db *store.DB, runner *jobs.Runner, dir string, log *slog.Logger) {
	list, err := db.List(ctx, 1)
	if err != nil || len(list) > 0 {
		return
	}
	pairFile := filepath.Join(dir, "pair.json")
	if _, err := os.Stat(pairFile); errors.Is(err, os.ErrNotExist) {
		log.Info("generating the demo pair", "dir", dir)
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if _, err := generateDemo(ctx, synth.Options{Preset: "openvla-7b", Scale: 0.05, Out: tmp, Seed: 1}); err != nil {
			log.Error("demo pair", "err", err)
			return
		}
		if err := os.Rename(tmp, dir); err != nil {
			log.Error("demo pair", "err", err)
			return
		}
	}
	pair, err := synth.ReadPair(dir)
	if err != nil {
		log.Error("demo pair", "err", err)
		return
	}
	// Named for what it is: its file names ("vla vs prismatic") would not say.
	labels := store.Labels{Name: "demo: synthetic OpenVLA-7B-shaped pair", Tags: []string{"demo"}}
	if _, err := db.CreateLabeled(ctx, store.AnalysisRequest{Base: pair.Base, VLA: pair.VLA}, labels); err != nil {
		log.Error("demo analysis", "err", err)
		return
	}
	runner.Wake()
}
