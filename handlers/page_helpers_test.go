package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// pageFixtures is the repository's fixture folder.
var pageFixtures = testfixtures.Dir()

// pageServer is a real server for page tests: a store in a temp folder, a
// running job runner, one --root holding the π0.5 fixture pair and an uploads
// folder, as `deltascope serve` wires them.
type pageServer struct {
	*httptest.Server
	db      *store.DB
	root    string
	uploads string
}

// newPageServer starts a server; with run false its runner never starts, so
// queued analyses stay queued.
func newPageServer(tb testing.TB, run bool) *pageServer {
	tb.Helper()
	s, start := newRealServer(tb)
	if run {
		start()
	}
	return s
}

// newRealServer wires a server as `deltascope serve` does, with its job runner
// started only when start is called; everything stops at the end of the test.
func newRealServer(tb testing.TB) (s *pageServer, start func()) {
	tb.Helper()
	root := tb.TempDir()
	copyTree(tb, filepath.Join(pageFixtures, "pi05"), filepath.Join(root, "pi05"))
	db, err := store.Open(context.Background(), tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	uploads := filepath.Join(tb.TempDir(), "uploads")
	roots := []string{uploads, root}
	runner := jobs.New(db, jobs.Options{Roots: roots, Log: log, ProgressEvery: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once sync.Once
	start = func() { once.Do(func() { go func() { runner.Run(ctx); close(done) }() }) }
	srv := httptest.NewServer(New(db, runner, Config{Roots: roots, UploadDir: uploads, Log: log}).Routes())
	tb.Cleanup(func() {
		srv.Close()
		cancel()
		once.Do(func() { close(done) }) // never started: nothing to wait for
		<-done
		db.Close()
	})
	return &pageServer{Server: srv, db: db, root: root, uploads: uploads}, start
}

func copyTree(tb testing.TB, from, to string) {
	tb.Helper()
	err := filepath.Walk(from, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// analyzeFixture queues the π0.5 fixture pair and waits until it is done.
func (s *pageServer) analyzeFixture(tb testing.TB) string {
	tb.Helper()
	resp, err := http.Post(s.URL+"/api/analyses", "application/json",
		strings.NewReader(`{"base": ["pi05/base"], "vla": ["pi05/vla/model.safetensors"]}`))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	s.waitStatus(tb, created.ID, store.StatusDone)
	return created.ID
}

func (s *pageServer) waitStatus(tb testing.TB, id string, want store.Status) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		a, err := s.db.Get(context.Background(), id)
		if err != nil {
			tb.Fatal(err)
		}
		if a.Status == want {
			return
		}
		if a.Status.Terminal() {
			tb.Fatalf("analysis %s ended %s (%s), want %s", id, a.Status, a.Error, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("analysis %s did not become %s", id, want)
}

// storeResult stores a hand-made result as a done analysis: names no
// checkpoint file could easily carry (an HTML tag) reach the pages this way.
func (s *pageServer) storeResult(tb testing.TB, res *analysis.Result) string {
	tb.Helper()
	ctx := context.Background()
	a, err := s.db.CreateRunning(ctx, store.AnalysisRequest{Base: []string{"/made/up/base"}, VLA: []string{"/made/up/vla"}})
	if err != nil {
		tb.Fatal(err)
	}
	rec := func(fp string) store.CheckpointRecord {
		return store.CheckpointRecord{Fingerprint: fp, Sources: []store.SourceRecord{{Spec: "/made/up/" + fp, Path: "/made/up/" + fp, Format: "safetensors"}}}
	}
	if err := s.db.Finish(ctx, a.ID, rec("b"+a.ID), rec("v"+a.ID), res); err != nil {
		tb.Fatal(err)
	}
	return a.ID
}
