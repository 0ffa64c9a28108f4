package store

import (
	"context"
	"errors"
	"testing"
)

func TestSeriesLifecycle(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	mk := func() string {
		a, err := db.CreateAnalysis(ctx, sampleRequest)
		if err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	a1, a2, d2 := mk(), mk(), mk()
	// Given out of order, stored in step order.
	s, err := db.CreateSeries(ctx, "  run 7 ", []string{"/m/base"}, nil, []SeriesStep{
		{Step: 2000, VLA: []string{"/m/checkpoint-2000"}, AnalysisID: a2, DriftID: d2},
		{Step: 1000, VLA: []string{"/m/checkpoint-1000"}, AnalysisID: a1, DriftID: a1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "run 7" || len(s.Steps) != 2 || s.Steps[0].Step != 1000 || s.Steps[1].DriftID != d2 || s.Steps[0].VLA[0] != "/m/checkpoint-1000" || s.Map == nil {
		t.Fatalf("created %+v", s)
	}
	got, err := db.GetSeries(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "series read back", got, s)
	list, err := db.ListSeries(ctx, 10)
	if err != nil || len(list) != 1 || list[0].ID != s.ID || list[0].Steps != 2 {
		t.Fatalf("ListSeries = %+v, %v", list, err)
	}
	if _, err := db.GetSeries(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown series: %v", err)
	}

	for _, tc := range []struct {
		name  string
		title string
		base  []string
		steps []SeriesStep
	}{
		{"no name", " ", []string{"/b"}, []SeriesStep{{Step: 1, AnalysisID: a1}}},
		{"no base", "x", nil, []SeriesStep{{Step: 1, AnalysisID: a1}}},
		{"no steps", "x", []string{"/b"}, nil},
		{"step twice", "x", []string{"/b"}, []SeriesStep{{Step: 1, AnalysisID: a1}, {Step: 1, AnalysisID: a2}}},
		{"unknown analysis", "x", []string{"/b"}, []SeriesStep{{Step: 1, AnalysisID: "nope"}}},
	} {
		if _, err := db.CreateSeries(ctx, tc.title, tc.base, nil, tc.steps); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	// A refused series leaves nothing behind.
	if list, _ := db.ListSeries(ctx, 10); len(list) != 1 {
		t.Errorf("%d series after the refusals", len(list))
	}
}
