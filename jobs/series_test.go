package jobs

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/store"
)

// TestCreateSeries queues a 3-checkpoint run on a real SQLite store: each
// step's analysis against the base and a drift analysis from the previous
// checkpoint, in step order whatever the request's order; a bad request
// queues nothing; LoadSeries follows the analyses to the end and reads the
// trajectory back; the same run again reuses every analysis.
func TestCreateSeries(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	run, err := synth.GenerateSeries(ctx, synth.Options{Preset: "tinyllama", Scale: 0.02, Out: filepath.Join(root, "run")}, 3)
	if err != nil {
		t.Fatal(err)
	}
	abs := func(specs []string) []string {
		out := make([]string, len(specs))
		for i, s := range specs {
			out[i] = filepath.Join(root, "run", s)
		}
		return out
	}
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := New(db, Options{Roots: []string{root}, Threads: 1, ProgressEvery: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	opt := SeriesOptions{Open: checkpoint.Options{Roots: []string{root}}, MaxQueued: 100}

	// The request's order is 3000, 1000, 2000.
	var steps []store.SeriesStep
	for _, i := range []int{2, 0, 1} {
		c := run.Checkpoints[i]
		steps = append(steps, store.SeriesStep{Step: int64(c.Step), VLA: abs(c.VLA)})
	}
	ns := NewSeries{Name: " tiny run ", Base: abs(run.Base), Steps: steps}

	for _, tc := range []struct {
		name string
		edit func(*NewSeries, *SeriesOptions)
		is   error
		want string
	}{
		{"no name", func(n *NewSeries, _ *SeriesOptions) { n.Name = " " }, store.ErrInvalid, "name"},
		{"no base", func(n *NewSeries, _ *SeriesOptions) { n.Base = nil }, store.ErrInvalid, "base"},
		{"bad map rule", func(n *NewSeries, _ *SeriesOptions) { n.Map = []string{"(=>x"} }, store.ErrInvalid, "map rule"},
		{"no steps", func(n *NewSeries, _ *SeriesOptions) { n.Steps = nil }, store.ErrInvalid, "checkpoint"},
		{"a step twice", func(n *NewSeries, _ *SeriesOptions) {
			n.Steps = []store.SeriesStep{steps[0], {Step: steps[0].Step, VLA: steps[1].VLA}}
		}, store.ErrInvalid, "appears twice"},
		{"a negative step", func(n *NewSeries, _ *SeriesOptions) { n.Steps = []store.SeriesStep{{Step: -1, VLA: steps[0].VLA}} }, store.ErrInvalid, "negative"},
		{"a step without source", func(n *NewSeries, _ *SeriesOptions) { n.Steps = []store.SeriesStep{{Step: 5}} }, store.ErrInvalid, "no source"},
		{"the queue full", func(_ *NewSeries, o *SeriesOptions) { o.MaxQueued = 5 }, ErrQueueFull, "up to 6 analyses"},
	} {
		n, o := ns, opt
		tc.edit(&n, &o)
		got, counts, err := r.CreateSeries(ctx, n, o)
		if !errors.Is(err, tc.is) || !strings.Contains(fmtErr(err), tc.want) || got != nil || counts != (CacheCounts{}) {
			t.Errorf("%s: %v, %v, %+v; want %v mentioning %q and nothing queued", tc.name, got, err, counts, tc.is, tc.want)
		}
	}
	// A missing checkpoint is refused by its open, before its analysis is queued.
	missing := ns
	missing.Steps = []store.SeriesStep{{Step: 1, VLA: []string{filepath.Join(root, "run", "nope")}}}
	if _, counts, err := r.CreateSeries(ctx, missing, opt); err == nil || !strings.Contains(err.Error(), "nope") || counts.Misses != 0 {
		t.Errorf("a missing checkpoint: %v, %+v", err, counts)
	}
	if n, err := db.CountByStatus(ctx); err != nil || n[store.StatusQueued] != 0 {
		t.Fatalf("refused requests queued %v (%v)", n, err)
	}

	series, counts, err := r.CreateSeries(ctx, ns, opt)
	if err != nil {
		t.Fatal(err)
	}
	if counts != (CacheCounts{Misses: 5}) {
		t.Errorf("counts %+v, want 5 analyses queued (3 steps, 2 drifts)", counts)
	}
	if series.Name != "tiny run" || len(series.Steps) != 3 || series.Steps[0].Step != 1000 || series.Steps[1].Step != 2000 || series.Steps[2].Step != 3000 {
		t.Fatalf("series %+v", series)
	}
	if steps[0].AnalysisID != "" {
		t.Errorf("the request's steps were changed: %+v", steps[0])
	}
	wantNames := map[string]string{series.Steps[0].AnalysisID: "tiny run · step 1000", series.Steps[1].AnalysisID: "tiny run · step 2000",
		series.Steps[1].DriftID: "tiny run · drift 1000 → 2000", series.Steps[2].DriftID: "tiny run · drift 2000 → 3000"}
	for id, name := range wantNames {
		a, err := db.Get(ctx, id)
		if err != nil || a.Name != name || a.Status != store.StatusQueued {
			t.Errorf("analysis %s: %+v (%v), want %q queued", id, a, err, name)
		}
	}
	drift, err := db.Get(ctx, series.Steps[1].DriftID)
	if err != nil || drift.Request.Base[0] != series.Steps[0].VLA[0] || drift.Request.VLA[0] != series.Steps[1].VLA[0] {
		t.Errorf("the drift into step 2000 is not checkpoint 1000 against 2000: %+v", drift)
	}
	if series.Steps[0].DriftID != series.Steps[0].AnalysisID {
		t.Errorf("the first step's drift is its own analysis: %+v", series.Steps[0])
	}

	v, _, err := LoadSeries(ctx, db, series.ID)
	if err != nil || v.Done || len(v.Steps) != 3 || v.Steps[0].Status != store.StatusQueued || v.Steps[0].Delta != nil {
		t.Fatalf("before the runner: %+v (%v)", v, err)
	}

	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { r.Run(runCtx); close(stopped) }()
	defer func() { stop(); <-stopped }()
	// A hang guard, not a timed assertion.
	for deadline := time.Now().Add(2 * time.Minute); !v.Done; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("series not done: %+v", v.Steps)
		}
		if v, _, err = LoadSeries(ctx, db, series.ID); err != nil {
			t.Fatal(err)
		}
		for _, st := range v.Steps {
			if st.Status == store.StatusFailed || st.DriftStatus == store.StatusFailed {
				t.Fatalf("step %d failed", st.Step)
			}
		}
	}
	v, tensors, err := LoadSeries(ctx, db, series.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range v.Steps {
		if st.Progress != 1 || len(tensors[st.AnalysisID]) == 0 || len(tensors[st.DriftID]) == 0 {
			t.Errorf("step %d: progress %v, %d and %d tensors", st.Step, st.Progress, len(tensors[st.AnalysisID]), len(tensors[st.DriftID]))
		}
		if !(st.Drift[""] > 0) || !(st.DriftNorm[""] > 0) {
			t.Errorf("step %d: drift %v, norm %v", st.Step, st.Drift, st.DriftNorm)
		}
		if i > 0 && !(st.Delta[""] > v.Steps[i-1].Delta[""]) {
			t.Errorf("ΔW does not grow from step %d to %d: %v → %v", v.Steps[i-1].Step, st.Step, v.Steps[i-1].Delta[""], st.Delta[""])
		}
	}
	if v.Steps[0].Drift[""] != v.Steps[0].Delta[""] {
		t.Errorf("the first step's drift %v is not its ΔW %v", v.Steps[0].Drift[""], v.Steps[0].Delta[""])
	}

	again, counts, err := r.CreateSeries(ctx, ns, opt)
	if err != nil {
		t.Fatal(err)
	}
	if counts != (CacheCounts{Hits: 5}) {
		t.Errorf("again: counts %+v, want every analysis from the cache", counts)
	}
	for i := range again.Steps {
		if again.ID == series.ID || again.Steps[i].AnalysisID != series.Steps[i].AnalysisID || again.Steps[i].DriftID != series.Steps[i].DriftID {
			t.Errorf("again, step %d: %+v, want the analyses of %+v", again.Steps[i].Step, again.Steps[i], series.Steps[i])
		}
	}
	if _, _, err := LoadSeries(ctx, db, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown series: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
