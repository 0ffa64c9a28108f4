package handlers

import (
	"bytes"
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
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// pageFixtures is the repository's fixture folder.
var pageFixtures = testfixtures.Dir()

// testServerOptions is what one test server differs in from the others; the
// zero value is `deltascope serve` as it runs by default (auth none, default
// limits), over a --root holding the π0.5 fixture pair and an uploads folder.
type testServerOptions struct {
	// data is the data folder (the database; uploads under it); default a
	// temp folder. The full-disk tests give a small tmpfs.
	data string
	// config adjusts the server's Config (auth mode, limits, roots).
	config func(*Config)
	// logs receives the server's JSON log; default discarded.
	logs io.Writer
	// limited serves through Server.HTTPServer, with the connection caps and
	// timeouts `serve` sets, instead of httptest's plain server.
	limited bool
	// prepare runs on the store before the server starts (users, analyses).
	prepare func(db *store.DB, root string)
	// tweak adjusts the http.Server before it starts (socket options).
	tweak func(*http.Server)
}

// liveServer is a real server for tests: a store in a temp folder, the job
// runner (started by start, or at once by newTestServerWith's callers that
// want it), the real routes. Everything stops at the end of the test.
type liveServer struct {
	*httptest.Server
	srv     *Server
	db      *store.DB
	root    string
	uploads string
	start   func() // starts the job runner; later calls do nothing
}

// startLiveServer is the one way tests start a server: every helper below
// (page, API, recipe, accounts, full-disk and guarded servers) is this with
// options.
func startLiveServer(tb testing.TB, opt testServerOptions) *liveServer {
	tb.Helper()
	root := tb.TempDir()
	copyTree(tb, filepath.Join(pageFixtures, "pi05"), filepath.Join(root, "pi05"))
	data := opt.data
	if data == "" {
		data = tb.TempDir()
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		tb.Fatal(err)
	}
	fastPasswords(tb, db)
	logs := opt.logs
	if logs == nil {
		logs = io.Discard
	}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	uploads := filepath.Join(data, "uploads")
	if opt.data == "" {
		uploads = filepath.Join(tb.TempDir(), "uploads")
	}
	cfg := Config{Roots: []string{uploads, root}, UploadDir: uploads, Log: log}
	if opt.config != nil {
		opt.config(&cfg)
	}
	if opt.prepare != nil {
		opt.prepare(db, root)
	}
	runner := jobs.New(db, jobs.Options{Roots: cfg.Roots, Log: log, ProgressEvery: time.Millisecond})
	srv := New(db, runner, cfg)
	ts := httptest.NewUnstartedServer(srv.Routes())
	if opt.limited {
		ts.Config = srv.HTTPServer(srv.Routes())
	}
	if opt.tweak != nil {
		opt.tweak(ts.Config)
	}
	ts.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var once sync.Once
	start := func() { once.Do(func() { go func() { runner.Run(ctx); close(done) }() }) }
	tb.Cleanup(func() {
		ts.Close()
		cancel()
		once.Do(func() { close(done) }) // never started: nothing to wait for
		<-done
		db.Close()
	})
	return &liveServer{Server: ts, srv: srv, db: db, root: root, uploads: uploads, start: start}
}

// bigShapeOnlyAnalysis is a prepare step: a TinyLlama-shaped pair at 0.6
// scale (a 780 MB VLA, sparse: shapes only, zeros read) generated under the
// root and analysed, done; *id is its analysis. Its exports and listings take
// seconds and far more than socket buffers hold, for the tests of slow and
// vanishing clients.
func bigShapeOnlyAnalysis(tb testing.TB, id *string) func(*store.DB, string) {
	return func(db *store.DB, root string) {
		tb.Helper()
		pair, err := synth.Generate(context.Background(), synth.Options{Preset: "tinyllama", Scale: 0.6, Out: filepath.Join(root, "big"), ShapeOnly: true})
		if err != nil {
			tb.Fatal(err)
		}
		under := func(p string) string { return filepath.Join("big", p) }
		*id = analyzeInto(tb, db, root, checkpoint.MapSpecPaths(pair.Base, under), checkpoint.MapSpecPaths(pair.VLA, under))
	}
}

// pageServer is a live server for page tests.
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
// started only when start is called.
func newRealServer(tb testing.TB) (s *pageServer, start func()) {
	tb.Helper()
	l := startLiveServer(tb, testServerOptions{})
	return &pageServer{Server: l.Server, db: l.db, root: l.root, uploads: l.uploads}, l.start
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

// scenario is one API request and what its answer must hold: a table of them
// is how the API tests read (one row a case, as pocketbase writes them).
type scenario struct {
	name, method, path, body string
	status                   int
	expect                   string // a substring of the body
}

// runScenarios sends each scenario to the server at base, in order, and
// checks its status, its body and that it answered JSON.
func runScenarios(t *testing.T, base string, scenarios []scenario) {
	t.Helper()
	for _, c := range scenarios {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status || !bytes.Contains(body, []byte(c.expect)) {
				t.Errorf("%d %.400s; want %d with %q", resp.StatusCode, body, c.status, c.expect)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}
