package jobs

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/internal/pgtest"
	"github.com/deltascope/deltascope/store"
)

// BenchmarkQueue measures what the queue adds: 100 tiny analyses (a TinyLlama
// pair at width scale 0.01, a few ms of compute each) queued at once and
// drained by two workers, on the embedded runner over SQLite and on River over
// PostgreSQL. It reports the wall time per analysis.
func BenchmarkQueue(b *testing.B) {
	root := b.TempDir()
	if _, err := synth.Generate(context.Background(), synth.Options{Preset: "tinyllama", Scale: 0.01, Out: root, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	pair, err := synth.ReadPair(root) // absolute paths
	if err != nil {
		b.Fatal(err)
	}
	req := store.AnalysisRequest{Base: pair.Base, VLA: pair.VLA}

	b.Run("sqlite", func(b *testing.B) {
		db, err := store.Open(context.Background(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchQueue(b, db, "", root, req)
	})
	b.Run("postgres_river", func(b *testing.B) {
		c, err := pgtest.Start()
		if err != nil {
			b.Skipf("PostgreSQL: %v", err)
		}
		b.Cleanup(c.Stop) // after the database's drop, which CreateDB registers next
		url := c.CreateDB(b)
		db, err := store.OpenURL(context.Background(), url)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchQueue(b, db, url, root, req)
	})
}

func benchQueue(b *testing.B, db *store.DB, url, root string, req store.AnalysisRequest) {
	const n = 100
	ctx, cancel := context.WithCancel(context.Background())
	r := New(db, Options{Roots: []string{root}, Workers: 2, Threads: 1, QueueURL: url,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	stopped := make(chan struct{})
	go func() { r.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	var total time.Duration
	for b.Loop() {
		start := time.Now()
		before := r.Stats().Done
		for range n {
			if _, err := db.CreateAnalysis(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		r.Wake()
		deadline := time.Now().Add(5 * time.Minute)
		for r.Stats().Done < before+n {
			if time.Now().After(deadline) {
				b.Fatalf("%d of %d analyses done after 5 minutes", r.Stats().Done-before, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N*n), "ms/analysis")
}
