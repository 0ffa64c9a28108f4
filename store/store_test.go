package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// mustOpen opens a fresh database in a temporary folder (on the PostgreSQL
// pass, a fresh database: pg_test.go), closed at the end of the test, with a
// clock that advances 1 ms per reading so that creation order is unambiguous.
func mustOpen(tb testing.TB) *DB {
	tb.Helper()
	return mustOpenDir(tb, tb.TempDir())
}

func mustOpenDir(tb testing.TB, dir string) *DB {
	tb.Helper()
	db, err := openTest(tb, dir, SchemaVersion())
	if err != nil {
		tb.Fatal(err)
	}
	useFakeClock(db)
	if err := db.SetPasswordCost(bcrypt.MinCost); err != nil { // fast hashes in tests
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func useFakeClock(db *DB) {
	var tick atomic.Int64
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db.Now = func() time.Time { return start.Add(time.Duration(tick.Add(1)) * time.Millisecond) }
}

// startAnalysis queues an analysis and claims it, so it is running.
func startAnalysis(tb testing.TB, db *DB, req AnalysisRequest) *Analysis {
	tb.Helper()
	ctx := context.Background()
	a, err := db.CreateAnalysis(ctx, req)
	if err != nil {
		tb.Fatal(err)
	}
	got, err := db.ClaimNext(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if got.ID != a.ID || got.Status != StatusRunning {
		tb.Fatalf("claimed %s (%s), want %s running", got.ID, got.Status, a.ID)
	}
	return got
}

var sampleRequest = AnalysisRequest{
	Base: []string{"/models/base"},
	VLA:  []string{"/models/vla"},
	Map:  []string{`^llm\.=>language_model.`},
}

// record describes a checkpoint read from one safetensors file under dir.
func record(fingerprint, dir string, size, mtime int64) CheckpointRecord {
	path := dir + "/model.safetensors"
	return CheckpointRecord{
		Fingerprint: fingerprint, Params: 1234, Bytes: size,
		Sources: []SourceRecord{{
			Spec: dir, Path: path, Format: "safetensors",
			Metadata: map[string]string{"format": "pt"},
			Config:   json.RawMessage(`{"num_attention_heads": 2}`),
			Files:    []FileIdentity{{Path: path, Size: size, ModTimeNs: mtime, Inode: 1 << 63, Device: 42, HeaderSHA: "h-" + fingerprint}},
		}},
	}
}

func f32s(n int, scale float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = scale * float32(i+1) / 7
	}
	return v
}

// sampleResult is a small but complete Result: every field set somewhere,
// NaN and Inf statistics, tensors with and without arrays, every issue kind.
func sampleResult() *analysis.Result {
	nan, inf := analysis.Num(math.NaN()), analysis.Num(math.Inf(1))
	tensor := func(component string, layer int, kind string, rows, cols int) analysis.TensorStats {
		name := fmt.Sprintf("%s.%d.%s.weight", component, layer, kind)
		t := analysis.TensorStats{
			Base: "base." + name, VLA: name, Component: component, Layer: layer, Kind: kind, Rule: "identity",
			DTypeBase: "BF16", DTypeVLA: "F32", ShapeBase: []int64{int64(rows), int64(cols)}, ShapeVLA: []int64{int64(rows), int64(cols)},
			FroBase: 12.5, FroVLA: 12.75, FroDelta: 0.1 + analysis.Num(layer), RelDelta: 0.008, Cosine: 0.99996,
			MaxAbsDelta: 0.03125, MeanAbsDelta: 1.0 / 3, ChangedFraction: 0.875, Compared: int64(rows * cols),
			NonFiniteBase: 0, NonFiniteVLA: 1, Numeric: true,
			RowDelta: f32s(rows, 0.5), ColDelta: f32s(cols, 0.25), RowBase: f32s(rows, 2), ColBase: f32s(cols, 3),
		}
		return t
	}
	res := &analysis.Result{
		EngineVersion:   analysis.EngineVersion,
		Geometry:        map[string]arch.Geometry{"llm": {Heads: 2, KVHeads: 1, HeadDim: 4}, "vision.siglip": {Heads: 2, KVHeads: 2, HeadDim: 2}},
		Warnings:        []string{"vision.dino: attention geometry unknown"},
		GeometryGuessed: []string{"vision.siglip"},
		Suggestions: []arch.Suggestion{{Rule: `^base\.only\.=>only.`, From: "base.only.", To: "only.", Pairs: 2,
			ExampleBase: "base.only.a", ExampleVLA: "only.a"}},
		BaseParams: 5000, VLAParams: 5100, Compared: 4900, GlobalRelDelta: 0.0125,
		BaseOnly:  []string{"base.only.a", "base.only.b"},
		VLAOnly:   []string{"action_expert.0.w"},
		Ambiguous: []analysis.Ambiguity{{Name: "x.weight", Side: "base", Candidates: []string{"a.x.weight", "b.x.weight"}}},
		Mismatched: []analysis.Mismatch{
			{Base: "base.embed", VLA: "embed", ShapeBase: []int64{10, 8}, ShapeVLA: []int64{12, 8}, Compared: true, Reason: "dim 0 differs: compared on the first 10 rows"},
			{Base: "base.odd", VLA: "odd", ShapeBase: []int64{3, 4}, ShapeVLA: []int64{4, 3}, Reason: "shapes differ"},
		},
	}
	for layer := range 2 {
		for _, k := range []string{"ffn_up", "attn_q", "ffn_gate", "attn_k"} {
			res.Tensors = append(res.Tensors, tensor("llm", layer, k, 8, 6))
		}
		res.Tensors = append(res.Tensors, tensor("llm", layer, "ffn_down", 6, 8))
	}
	res.Tensors = append(res.Tensors, tensor("vision.siglip", 0, "attn_qkv", 12, 4))

	embed := tensor("llm", -1, "embed", 10, 8)
	embed.Overlap = true
	embed.ShapeVLA = []int64{12, 8}
	embed.RelDelta = inf // zero base: ‖ΔW‖ / 0
	res.Tensors = append(res.Tensors, embed)

	bias := tensor("llm", 0, "norm", 6, 0)
	bias.Of, bias.ShapeBase, bias.ShapeVLA = "attn_q", []int64{6}, []int64{6}
	bias.RowDelta, bias.ColDelta, bias.RowBase, bias.ColBase = nil, nil, nil, nil
	res.Tensors = append(res.Tensors, bias)

	ids := tensor("llm", -1, "other", 0, 0)
	ids.DTypeBase, ids.DTypeVLA, ids.ShapeBase, ids.ShapeVLA = "I64", "I64", []int64{}, []int64{}
	ids.Numeric, ids.Compared, ids.ChangedFraction = false, 1, 0
	ids.FroBase, ids.FroVLA, ids.FroDelta, ids.RelDelta, ids.Cosine, ids.MaxAbsDelta, ids.MeanAbsDelta = nan, nan, nan, nan, nan, nan, nan
	ids.RowDelta, ids.ColDelta, ids.RowBase, ids.ColBase = nil, nil, nil, nil
	res.Tensors = append(res.Tensors, ids)

	zero := tensor("llm", 1, "attn_o", 6, 8)
	zero.Cosine = nan // all-zero tensors
	res.Tensors = append(res.Tensors, zero)

	for layer := range 2 {
		res.Units = append(res.Units,
			analysis.UnitScores{Component: "llm", Kind: analysis.UnitFFN, Layer: layer, Metric: analysis.Relative, Variant: analysis.OpenVLA, Scores: f32s(8, float32(layer+1))},
			analysis.UnitScores{Component: "llm", Kind: analysis.UnitHead, Layer: layer, Metric: analysis.Relative, Variant: analysis.OpenVLA, Scores: []float32{0.5, 1e-30}})
	}
	return res
}

// sameJSON fails unless a and b marshal to the same JSON: every field, with
// NaN and Inf as null and float32 arrays exact.
func sameJSON(tb testing.TB, what string, got, want any) {
	tb.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		tb.Fatal(err)
	}
	if string(g) != string(w) {
		tb.Fatalf("%s differs:\n got %s\nwant %s", what, g, w)
	}
}

// finishSample runs one analysis of sampleResult to done.
func finishSample(tb testing.TB, db *DB, baseFP, vlaFP, dir string) (*Analysis, *analysis.Result) {
	tb.Helper()
	a := startAnalysis(tb, db, sampleRequest)
	res := sampleResult()
	// As the engine does: the result carries the fingerprints of its sides.
	res.BaseFingerprint, res.VLAFingerprint = baseFP, vlaFP
	if err := db.Finish(context.Background(), a.ID, record(baseFP, dir+"/base", 100, 7), record(vlaFP, dir+"/vla", 200, 8), res); err != nil {
		tb.Fatal(err)
	}
	return a, res
}

func countRows(tb testing.TB, db *DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.reader.QueryRow(query, args...).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}
