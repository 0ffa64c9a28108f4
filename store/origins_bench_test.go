package store

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSourcesHome is the home page's added query: the sources of 500
// done analyses (each its own pair of checkpoints, one place each), without
// files; with files is the overview's, for one analysis.
func BenchmarkSourcesHome(b *testing.B) {
	db := mustOpen(b)
	ctx := context.Background()
	var ids []string
	for i := range 500 {
		a := startAnalysis(b, db, AnalysisRequest{Base: []string{fmt.Sprintf("s3://m/b%d", i)}, VLA: []string{fmt.Sprintf("/d/v%d", i)}})
		res := sampleResult()
		if err := db.Finish(ctx, a.ID, record(fmt.Sprintf("b%d", i), fmt.Sprintf("s3://m/b%d", i), 1, 1), record(fmt.Sprintf("v%d", i), fmt.Sprintf("/d/v%d", i), 1, 1), res); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	b.Run("home-500", func(b *testing.B) {
		for b.Loop() {
			got, err := db.Sources(ctx, ids, false)
			if err != nil || len(got) != 500 {
				b.Fatal(len(got), err)
			}
		}
	})
	// What the home page read before, for scale: the list itself.
	b.Run("list-500", func(b *testing.B) {
		for b.Loop() {
			if list, err := db.List(ctx, 500); err != nil || len(list) != 500 {
				b.Fatal(len(list), err)
			}
		}
	})
	b.Run("overview-1-files", func(b *testing.B) {
		for b.Loop() {
			got, err := db.Sources(ctx, ids[:1], true)
			if err != nil || len(got[ids[0]].Base[0].Files) != 1 {
				b.Fatal(got, err)
			}
		}
	})
}
