package handlers

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// benchData caches the OpenVLA-7B-shaped pair (~1 GB per side) and its
// analysis between benchmark runs; it is git-ignored.
const benchData = "../.bench-data"

// openvlaOverview returns a server whose store holds a done analysis of the
// openvla-7b preset at scale 0.25 (full layer and module structure, ~470 M
// parameters), generating and analysing it on first use.
func openvlaOverview(b *testing.B) (*Server, string) {
	b.Helper()
	dir, err := filepath.Abs(filepath.Join(benchData, "openvla-7b-0.25"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := os.Stat(filepath.Join(dir, "pair.json")); err != nil {
		b.Logf("generating %s (once)", dir)
		if _, err := synth.Generate(ctx, synth.Options{Preset: "openvla-7b", Scale: 0.25, Out: dir, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	pair, err := synth.ReadPair(dir)
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(ctx, filepath.Join(dir, "..", "openvla-7b-0.25-db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner := jobs.New(db, jobs.Options{Roots: []string{dir}, Log: log})
	srv := New(db, runner, Config{Roots: []string{dir}, Log: log})

	list, err := db.List(ctx, 10)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range list {
		if a.Status == store.StatusDone {
			return srv, a.ID
		}
	}
	b.Logf("analysing %s (once)", dir)
	a, err := db.CreateAnalysis(ctx, store.AnalysisRequest{Base: abs(dir, pair.Base), VLA: abs(dir, pair.VLA)})
	if err != nil {
		b.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { runner.Run(rctx); close(done) }()
	runner.Wake()
	for {
		got, err := db.Get(ctx, a.ID)
		if err != nil {
			b.Fatal(err)
		}
		if got.Status.Terminal() {
			stop()
			<-done
			if got.Status != store.StatusDone {
				b.Fatalf("benchmark analysis %s: %s", got.Status, got.Error)
			}
			return srv, a.ID
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// abs makes the pair's specs ([PREFIX=]PATH, relative to dir or not) absolute.
func abs(dir string, specs []string) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		prefix, p := "", s
		if j := indexPrefix(s); j >= 0 {
			prefix, p = s[:j+1], s[j+1:]
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		out[i] = prefix + p
	}
	return out
}

func indexPrefix(spec string) int {
	for i, c := range spec {
		switch c {
		case '=':
			return i
		case '/':
			return -1
		}
	}
	return -1
}

// BenchmarkOverviewPage serves the overview of the OpenVLA-shaped analysis
// from the store (target: under 100 ms).
func BenchmarkOverviewPage(b *testing.B) {
	srv, id := openvlaOverview(b)
	h := srv.Routes()
	var size int
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/analyses/"+id, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "page-bytes")
}

// BenchmarkOverviewInteractive measures, in headless Chromium, the time from
// navigation to the first heatmap (the LLM's) drawn with its click handler
// on — ns/op, target under 1.5 s — and reports all-ms, the time until every
// chart of the page is drawn.
func BenchmarkOverviewInteractive(b *testing.B) {
	srv, id := openvlaOverview(b)
	ts := httptest.NewServer(srv.Routes())
	defer ts.Close()
	ctx := newBrowser(b)
	first := heatmapDrawn("heatmap-llm")
	all := `(() => { const cs = [...document.querySelectorAll('[data-chart]')];
		return cs.length > 0 && cs.every(c => c.dataset.drawn === '1' && echarts.getInstanceByDom(c)); })()`
	var allTotal time.Duration
	poll := func(c context.Context, expr string) error {
		_, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(5*time.Millisecond)))
		return err
	}
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := chromedp.Do(c, chromedp.Navigate(ts.URL+"/analyses/"+id))
		if err == nil {
			err = poll(c, first)
		}
		b.StopTimer()
		if err == nil {
			err = poll(c, all)
			allTotal += time.Since(start)
		}
		b.StartTimer()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(allTotal.Milliseconds())/float64(b.N), "all-ms")
}
