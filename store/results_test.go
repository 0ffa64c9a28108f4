package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/deltascope/deltascope/analysis"
)

func TestFinishResultRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, want := finishSample(t, db, "fp-base", "fp-vla", t.TempDir())

	got, err := db.Result(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "result", got, want)
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for i := range want.Tensors {
		g, w := got.Tensors[i], want.Tensors[i]
		for _, arr := range [][2][]float32{{g.RowDelta, w.RowDelta}, {g.ColDelta, w.ColDelta}, {g.RowBase, w.RowBase}, {g.ColBase, w.ColBase}} {
			if (arr[0] == nil) != (arr[1] == nil) {
				t.Errorf("%s: array presence differs: got %v, want %v", w.VLA, arr[0], arr[1])
			}
		}
		// NaN and Inf are NULL in the database and NaN again when read.
		for _, pair := range [][2]analysis.Num{{g.Cosine, w.Cosine}, {g.RelDelta, w.RelDelta}, {g.FroBase, w.FroBase}} {
			wf := float64(pair[1])
			if math.IsNaN(wf) || math.IsInf(wf, 0) {
				if !math.IsNaN(float64(pair[0])) {
					t.Errorf("%s: non-finite %v came back as %v, want NaN", w.VLA, wf, pair[0])
				}
			} else if pair[0] != pair[1] {
				t.Errorf("%s: %v came back as %v", w.VLA, pair[1], pair[0])
			}
		}
	}
	if n := countRows(t, db, `SELECT count(*) FROM tensor_stats WHERE analysis_id = ? AND cosine IS NULL`, a.ID); n != 2 {
		t.Errorf("%d tensors with a NULL cosine, want 2 (the NaN ones)", n)
	}
	if n := countRows(t, db, `SELECT count(*) FROM tensor_stats WHERE analysis_id = ? AND rel_delta IS NULL`, a.ID); n != 2 {
		t.Errorf("%d tensors with a NULL rel_delta, want 2 (one NaN, one Inf)", n)
	}

	done, err := db.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Status != StatusDone || done.CacheKey == "" || done.ResultOf != "" || done.FinishedAt == nil ||
		done.BaseFingerprint != "fp-base" || done.VLAFingerprint != "fp-vla" || done.Progress() != 1 {
		t.Fatalf("analysis after Finish: %+v", done)
	}
	if done.CacheKey != CacheKey("fp-base", "fp-vla", sampleRequest.Map, analysis.EngineVersion) {
		t.Errorf("cache key %s is not CacheKey(fingerprints, rules, engine)", done.CacheKey)
	}
	sameJSON(t, "summary", done.Summary, &Summary{ParamsCompared: want.Compared, BaseParams: want.BaseParams,
		VLAParams: want.VLAParams, GlobalRelDelta: want.GlobalRelDelta, Geometry: want.Geometry, Warnings: want.Warnings})
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTensorsFilterAndOrder(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, res := finishSample(t, db, "fp-base", "fp-vla", t.TempDir())
	one := 1

	tests := []struct {
		name   string
		filter TensorFilter
		want   func(analysis.TensorStats) bool
	}{
		{"all", TensorFilter{}, func(analysis.TensorStats) bool { return true }},
		{"llm ffn_gate", TensorFilter{Component: "llm", Kind: "ffn_gate", WithArrays: true},
			func(t analysis.TensorStats) bool { return t.Component == "llm" && t.Kind == "ffn_gate" }},
		{"llm layer 1", TensorFilter{Component: "llm", Layer: &one},
			func(t analysis.TensorStats) bool { return t.Component == "llm" && t.Layer == 1 }},
		{"vision", TensorFilter{Component: "vision.siglip", WithArrays: true},
			func(t analysis.TensorStats) bool { return t.Component == "vision.siglip" }},
		{"nothing", TensorFilter{Kind: "no_such_kind"}, func(analysis.TensorStats) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []analysis.TensorStats
			for _, ts := range res.Tensors {
				if tt.want(ts) {
					if !tt.filter.WithArrays {
						ts.RowDelta, ts.ColDelta, ts.RowBase, ts.ColBase = nil, nil, nil, nil
					}
					want = append(want, ts)
				}
			}
			sort.SliceStable(want, func(i, j int) bool {
				x, y := want[i], want[j]
				if x.Component != y.Component {
					return x.Component < y.Component
				}
				if x.Layer != y.Layer {
					return x.Layer < y.Layer
				}
				if x.Kind != y.Kind {
					return x.Kind < y.Kind
				}
				return x.VLA < y.VLA
			})
			got, err := db.Tensors(ctx, a.ID, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || len(got) != len(want) {
				t.Fatalf("%d tensors, want %d", len(got), len(want))
			}
			if len(want) > 0 {
				sameJSON(t, "tensors", got, want)
			}
		})
	}
}

func TestUnitsFilter(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	a, res := finishSample(t, db, "fp-base", "fp-vla", t.TempDir())
	tests := []struct {
		name   string
		filter UnitFilter
		want   int
	}{
		{"all", UnitFilter{}, len(res.Units)},
		{"heads", UnitFilter{Kind: analysis.UnitHead}, 2},
		{"llm ffn", UnitFilter{Component: "llm", Kind: analysis.UnitFFN}, 2},
		{"other component", UnitFilter{Component: "vision.dino"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Units(ctx, a.ID, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("%d units, want %d", len(got), tt.want)
			}
			var want []analysis.UnitScores
			for _, u := range res.Units {
				if (tt.filter.Kind == "" || u.Kind == tt.filter.Kind) && (tt.filter.Component == "" || u.Component == tt.filter.Component) {
					want = append(want, u)
				}
			}
			if len(want) > 0 {
				sameJSON(t, "units", got, want)
			}
		})
	}
}

func TestReadsOfUnknownAndUnfinishedAnalyses(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	queued, err := db.CreateAnalysis(ctx, sampleRequest)
	if err != nil {
		t.Fatal(err)
	}
	reads := map[string]func(id string) error{
		"Get":    func(id string) error { _, err := db.Get(ctx, id); return err },
		"Result": func(id string) error { _, err := db.Result(ctx, id); return err },
		"Tensors": func(id string) error {
			_, err := db.Tensors(ctx, id, TensorFilter{WithArrays: true})
			return err
		},
		"Units":  func(id string) error { _, err := db.Units(ctx, id, UnitFilter{}); return err },
		"Cancel": func(id string) error { _, err := db.Cancel(ctx, id); return err },
		"Fail":   func(id string) error { return db.Fail(ctx, id, "x") },
		"UpdateProgress": func(id string) error {
			return db.UpdateProgress(ctx, id, 1, 2, "t")
		},
		"Finish": func(id string) error {
			return db.Finish(ctx, id, record("a", "/a", 1, 1), record("b", "/b", 1, 1), sampleResult())
		},
	}
	for name, read := range reads {
		t.Run(name, func(t *testing.T) {
			err := read("no-such-id")
			if !errors.Is(err, ErrNotFound) || ErrorCode(err) != ENOTFOUND {
				t.Fatalf("%s(unknown) = %v, want ErrNotFound", name, err)
			}
		})
	}
	for _, name := range []string{"Result", "Tensors", "Units", "UpdateProgress", "Finish"} {
		t.Run(name+" of queued", func(t *testing.T) {
			if err := reads[name](queued.ID); !errors.Is(err, ErrConflict) {
				t.Fatalf("%s(queued) = %v, want ErrConflict", name, err)
			}
		})
	}
}

// TestConcurrentReadersDuringFinish reads tensors in a loop on several
// goroutines while another analysis is being finished: no reader fails for a
// reason other than "not done yet", and none ever sees part of a result.
func TestConcurrentReadersDuringFinish(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	dir := t.TempDir()
	first, res := finishSample(t, db, "fp-1", "fp-v1", dir)

	// Enough rows that Finish takes a while.
	big := sampleResult()
	for i := range 200 {
		ts := big.Tensors[0]
		ts.VLA = fmt.Sprintf("%s.copy%d", ts.VLA, i)
		big.Tensors = append(big.Tensors, ts)
	}
	second := startAnalysis(t, db, sampleRequest)

	// read checks one consistent view of both analyses.
	read := func() error {
		if got, err := db.Tensors(ctx, first.ID, TensorFilter{WithArrays: true}); err != nil || len(got) != len(res.Tensors) {
			return fmt.Errorf("first analysis: %d tensors (want %d), %v", len(got), len(res.Tensors), err)
		}
		got, err := db.Tensors(ctx, second.ID, TensorFilter{})
		switch {
		case errors.Is(err, ErrConflict): // not done yet
		case err != nil:
			return err
		case len(got) != len(big.Tensors):
			return fmt.Errorf("second analysis: partial result, %d of %d tensors", len(got), len(big.Tensors))
		}
		var n int
		if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM tensor_stats WHERE analysis_id = ?`, second.ID).Scan(&n); err != nil {
			return err
		}
		if n != 0 && n != len(big.Tensors) {
			return fmt.Errorf("second analysis: %d rows visible, want 0 or %d", n, len(big.Tensors))
		}
		return nil
	}

	stop := make(chan struct{})
	errs := make(chan error, 2)
	var reads atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := read(); err != nil {
					errs <- err
					return
				}
				reads.Add(1)
			}
		})
	}
	for reads.Load() == 0 && len(errs) == 0 {
		runtime.Gosched() // let the readers start before the write
	}
	finishErr := db.Finish(ctx, second.ID, record("fp-2", dir+"/b2", 1, 1), record("fp-v2", dir+"/v2", 1, 1), big)
	close(stop)
	wg.Wait()
	close(errs)
	if finishErr != nil {
		t.Fatal(finishErr)
	}
	for err := range errs {
		t.Error(err)
	}
	if got, err := db.Tensors(ctx, second.ID, TensorFilter{}); err != nil || len(got) != len(big.Tensors) {
		t.Fatalf("after Finish: %d tensors, %v", len(got), err)
	}
}
