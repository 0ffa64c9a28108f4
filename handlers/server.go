// Package handlers is deltascope's HTTP layer: one route table (routes.go), one
// handler per file, and thin handlers that parse a request, call the store or the
// job runner, and write a response.
package handlers

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// Config is what the server needs besides its store and runner.
type Config struct {
	// Roots are the folders whose checkpoints may be analysed by server path.
	Roots []string
	// MaxJSONBody bounds request bodies of the JSON API (default 1 MiB).
	MaxJSONBody int64
	// Limits bound what a checkpoint may declare.
	Limits checkpoint.Limits
	// UploadDir receives browser uploads (it should also be one of Roots, so
	// uploaded checkpoints can be analysed). Empty disables uploads.
	UploadDir string
	// UploadStore, s3://BUCKET/PREFIX, keeps uploads in object storage with
	// tusd's S3 store instead of in UploadDir (which then only buffers parts),
	// so that several servers share them. Sources under it are allowed, but it
	// is never a root of the file browser (which would list every account's
	// upload sessions).
	UploadStore string
	// UploadLockDB, the postgres:// URL of a store shared with other servers,
	// makes upload locks PostgreSQL advisory locks there too, so that two
	// servers never write one upload at once (api_uploads_lock.go). Empty:
	// locks within this process only.
	UploadLockDB string
	// MaxUploadBytes bounds one uploaded file (default 64 GiB).
	MaxUploadBytes int64
	Log            *slog.Logger
	// Auth decides who may do what: AuthNone (the zero value; every request acts
	// as an admin, so serve allows it on loopback only) or AuthAccounts.
	Auth AuthMode
	// SecureCookies marks the session cookie Secure even when the request came
	// over plain HTTP (behind a TLS-terminating proxy); TLS requests always are.
	SecureCookies bool
	// SessionTTL is how long a login lasts (default 7 days).
	SessionTTL time.Duration
	// TrustedOrigins may send state-changing browser requests besides the
	// server's own origin, e.g. "https://deltascope.lab.example".
	TrustedOrigins []string
	// Guard bounds queues, concurrent uploads and slow clients (limits.go).
	Guard Guard
}

// Server holds the dependencies of every handler.
type Server struct {
	db      *store.DB
	jobs    *jobs.Runner
	cfg     Config
	log     *slog.Logger
	uploads *uploadsTus // tus uploads (api_uploads_tus.go); nil when disabled
	stats   counters
	auth    *authState // login limiter and cross-origin protection
	guard   *guardState
	recipes *recipeState // the composer's result cache
	// exportSlots bound checkpoint exports, globally and per user.
	exportSlots *userSlots
	// previewSlots bound the requests that open and align two sides' headers
	// (preview, create), globally and per user.
	previewSlots *userSlots
	// heavyReads bound the tensor listings with rows streamed at once.
	heavyReads heavySlots
	// sourceRoots are where sources may lie: Roots and the UploadStore.
	sourceRoots []string
}

// New makes a Server.
func New(db *store.DB, runner *jobs.Runner, cfg Config) *Server {
	if cfg.MaxJSONBody <= 0 {
		cfg.MaxJSONBody = 1 << 20
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = 64 << 30
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	roots := make([]string, 0, len(cfg.Roots))
	for _, r := range cfg.Roots {
		if checkpoint.IsRemote(r) { // s3://BUCKET/PREFIX, hf://ORG: kept as given
			roots = append(roots, r)
			continue
		}
		if abs, err := filepath.Abs(r); err == nil {
			roots = append(roots, abs)
		}
	}
	cfg.Roots = roots
	sourceRoots := roots
	if cfg.UploadStore != "" {
		// Finished uploads are analysed where they lie: under this prefix.
		cfg.UploadStore = strings.TrimSuffix(cfg.UploadStore, "/")
		cfg.Roots = slices.DeleteFunc(slices.Clone(roots), func(r string) bool { return strings.TrimSuffix(r, "/") == cfg.UploadStore })
		sourceRoots = append(slices.Clip(cfg.Roots), cfg.UploadStore)
	}
	if cfg.UploadDir != "" {
		if abs, err := filepath.Abs(cfg.UploadDir); err == nil {
			cfg.UploadDir = abs
		}
	}
	s := &Server{db: db, jobs: runner, cfg: cfg, log: cfg.Log, stats: counters{started: time.Now()}, sourceRoots: sourceRoots}
	s.auth = newAuthState(&s.cfg, s.log)
	s.guard = newGuardState(&s.cfg.Guard)
	s.exportSlots = newExportSlots(s.guard.g)
	s.previewSlots = newPreviewSlots(s.guard.g)
	s.heavyReads = make(heavySlots, s.guard.g.MaxHeavyReads)
	if up, err := s.newUploadsTus(); err != nil {
		s.log.Error("uploads disabled", "err", err)
	} else {
		s.uploads = up
	}
	s.recipes = &recipeState{
		cache: newResultCache(resultCacheSize, s.loadResolveBase),
	}
	return s
}

func (s *Server) openOptions() checkpoint.Options {
	// HeaderWait: a request waits a few seconds for a header slot, then gets 429.
	return checkpoint.Options{Roots: s.sourceRoots, Limits: s.cfg.Limits, HeaderWait: checkpoint.DefaultHeaderWait}
}
