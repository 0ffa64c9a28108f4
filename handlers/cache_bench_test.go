package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// BenchmarkCacheHit compares a repeated request for an analysed pair (open the
// headers, recognise the files, answer with the done analysis) with computing
// the analysis. The bar: the cached answer in under 1 % of the compute
// time. The pair is OpenVLA-shaped at scale 0.25 (~1.9 GB in all).
func BenchmarkCacheHit(b *testing.B) {
	root := b.TempDir()
	pair, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: 0.25, Out: root, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(map[string][]string{"base": pair.Base, "vla": pair.VLA})
	db, err := store.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	runner := jobs.New(db, jobs.Options{Roots: []string{root}, Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go runner.Run(ctx)
	srv := httptest.NewServer(New(db, runner, Config{Roots: []string{root}, Log: log}).Routes())
	defer srv.Close()

	post := func() map[string]any {
		resp, err := http.Post(srv.URL+"/api/analyses", "application/json", strings.NewReader(string(body)))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	start := time.Now()
	id := post()["id"].(string)
	for {
		a, err := db.Get(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		if a.Status.Terminal() {
			if a.Status != store.StatusDone {
				b.Fatalf("analysis %s: %s", a.Status, a.Error)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	compute := time.Since(start)

	b.ResetTimer()
	for b.Loop() {
		if out := post(); out["cached"] != true || out["id"] != id {
			b.Fatalf("not a cache hit: %v", out)
		}
	}
	b.StopTimer()
	perHit := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(compute.Seconds()*1000, "compute-ms")
	b.ReportMetric(100*perHit.Seconds()/compute.Seconds(), "%-of-compute")
}
