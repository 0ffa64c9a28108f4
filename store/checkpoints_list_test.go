package store

import (
	"context"
	"testing"
)

func TestListCheckpoints(t *testing.T) {
	db := mustOpen(t)
	dir := t.TempDir()
	finishSample(t, db, "fp-base", "fp-vla", dir)
	finishSample(t, db, "fp-base", "fp-vla", t.TempDir()) // the same content elsewhere
	list, err := db.ListCheckpoints(context.Background(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("%d checkpoints, want 2 (one per content)", len(list))
	}
	for _, c := range list {
		if c.Locations != 2 || c.Analyses != 2 || len(c.Sources) == 0 || c.Params == 0 {
			t.Errorf("%+v: want 2 locations, 2 analyses, its sources", c)
		}
	}
}
