package analysis

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

var fixtures = testfixtures.Dir()

type refPair struct {
	Base         string    `json:"base"`
	VLA          string    `json:"vla"`
	FroBase      float64   `json:"fro_base"`
	FroVLA       float64   `json:"fro_vla"`
	FroDelta     float64   `json:"fro_delta"`
	MaxAbsDelta  float64   `json:"max_abs_delta"`
	MeanAbsDelta float64   `json:"mean_abs_delta"`
	Numel        int64     `json:"numel_compared"`
	RelDelta     float64   `json:"rel_delta"`
	Cosine       float64   `json:"cosine"`
	RowDelta     []float64 `json:"row_delta_norm"`
	RowBase      []float64 `json:"row_base_norm"`
	ColDelta     []float64 `json:"col_delta_norm"`
}

type reference struct {
	Pairs    []refPair `json:"pairs"`
	VLAOnly  []string  `json:"vla_only"`
	BaseOnly []string  `json:"base_only"`
	Frozen   []string  `json:"frozen_in_vla_training"`
}

func loadReference(t testing.TB) reference {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, "pi05", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

func analyzeFixture(t testing.TB, opt Options, base ...string) *Result {
	t.Helper()
	if len(base) == 0 {
		base = []string{filepath.Join(fixtures, "pi05", "base")}
	}
	b, err := checkpoint.OpenSide(base, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, err := checkpoint.OpenSide([]string{filepath.Join(fixtures, "pi05", "vla", "model.safetensors")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	res, err := Analyze(context.Background(), b, v, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func close6(got, want float64) bool {
	if want == 0 {
		return math.Abs(got) < 1e-12
	}
	return math.Abs(got-want) <= 1e-6*math.Abs(want)
}

func checkAgainstReference(t *testing.T, res *Result, ref reference) {
	t.Helper()
	byVLA := map[string]*TensorStats{}
	for i := range res.Tensors {
		byVLA[res.Tensors[i].VLA] = &res.Tensors[i]
	}
	if len(res.Tensors) != len(ref.Pairs) {
		t.Errorf("%d aligned tensors, reference has %d pairs", len(res.Tensors), len(ref.Pairs))
	}
	for _, p := range ref.Pairs {
		s := byVLA[p.VLA]
		if s == nil {
			t.Errorf("%s: not aligned", p.VLA)
			continue
		}
		if s.Base != p.Base {
			t.Errorf("%s aligned to %s, want %s", p.VLA, s.Base, p.Base)
		}
		for _, f := range []struct {
			name      string
			got, want float64
		}{
			{"fro_base", float64(s.FroBase), p.FroBase}, {"fro_vla", float64(s.FroVLA), p.FroVLA},
			{"fro_delta", float64(s.FroDelta), p.FroDelta}, {"max_abs_delta", float64(s.MaxAbsDelta), p.MaxAbsDelta},
			{"mean_abs_delta", float64(s.MeanAbsDelta), p.MeanAbsDelta}, {"rel_delta", float64(s.RelDelta), p.RelDelta},
			{"cosine", float64(s.Cosine), p.Cosine}, {"numel", float64(s.Compared), float64(p.Numel)},
		} {
			if !close6(f.got, f.want) {
				t.Errorf("%s %s = %.12g, want %.12g", p.VLA, f.name, f.got, f.want)
			}
		}
		for _, a := range []struct {
			name string
			got  []float32
			want []float64
		}{{"row_delta_norm", s.RowDelta, p.RowDelta}, {"row_base_norm", s.RowBase, p.RowBase}, {"col_delta_norm", s.ColDelta, p.ColDelta}} {
			if a.want == nil {
				continue // the reference omits some arrays (e.g. columns of the 4-D patch embedding)
			}
			if len(a.got) != len(a.want) {
				t.Errorf("%s %s: %d values, want %d", p.VLA, a.name, len(a.got), len(a.want))
				continue
			}
			for i := range a.want {
				// float32 storage: 1e-6 relative, or 1e-9 absolute for (near) zero norms.
				if math.Abs(float64(a.got[i])-a.want[i]) > 1e-6*math.Abs(a.want[i])+1e-9 {
					t.Errorf("%s %s[%d] = %g, want %g", p.VLA, a.name, i, a.got[i], a.want[i])
					break
				}
			}
		}
	}
}

// The reference is float64 arithmetic on the stored values: --exact.
func TestFixtureMatchesReference(t *testing.T) {
	ref := loadReference(t)
	res := analyzeFixture(t, Options{Exact: true})
	checkAgainstReference(t, res, ref)
	if !reflect.DeepEqual(res.VLAOnly, ref.VLAOnly) {
		t.Errorf("vla_only = %v\nwant %v", res.VLAOnly, ref.VLAOnly)
	}
	if len(res.BaseOnly) != len(ref.BaseOnly) {
		t.Errorf("base_only = %v, want %v", res.BaseOnly, ref.BaseOnly)
	}
	for _, n := range res.VLAOnly {
		if strings.Contains(n, "gemma_expert") {
			goto expertReported
		}
	}
	t.Error("the action expert is not reported VLA-only")
expertReported:
	var embed *TensorStats
	for i := range res.Tensors {
		if strings.HasSuffix(res.Tensors[i].VLA, "embed_tokens.weight") {
			embed = &res.Tensors[i]
		}
	}
	if embed == nil || !embed.Overlap || embed.Compared != 1000*128 || len(embed.RowDelta) != 1000 {
		t.Errorf("embed_tokens not compared on the 1000-row overlap: %+v", embed)
	}
	found := false
	for _, m := range res.Mismatched {
		found = found || (strings.HasSuffix(m.VLA, "embed_tokens.weight") && m.Compared)
	}
	if !found {
		t.Error("the vocabulary resize is not flagged in mismatched")
	}
}

// The frozen patch embedding was stored as BF16 from an F32 base: its ΔW is pure
// storage rounding, so no element counts as changed, in either mode; compared
// at the VLA's precision (the default) its ΔW is exactly 0, while --exact
// shows the rounding the reference measured.
func TestFrozenTensorsUnchanged(t *testing.T) {
	ref := loadReference(t)
	res := analyzeFixture(t, Options{})
	exact := analyzeFixture(t, Options{Exact: true})
	if res.Exact || !exact.Exact {
		t.Errorf("Exact recorded as %v / %v, want false / true", res.Exact, exact.Exact)
	}
	seen := 0
	for _, name := range ref.Frozen {
		for i, s := range res.Tensors {
			if s.VLA != name {
				continue
			}
			seen++
			if s.ChangedFraction != 0 || s.FroDelta != 0 || s.MaxAbsDelta != 0 || s.RelDelta != 0 {
				t.Errorf("%s: changed %g, ‖ΔW‖ %g, max %g, rel %g; want all exactly 0", name, s.ChangedFraction, s.FroDelta, s.MaxAbsDelta, s.RelDelta)
			}
			for r, d := range s.RowDelta {
				if d != 0 {
					t.Fatalf("%s: row %d ΔW %g, want 0", name, r, d)
				}
			}
			e := exact.Tensors[i]
			if e.VLA != name || e.ChangedFraction != 0 {
				t.Errorf("%s (exact): changed_fraction %g, want 0", name, e.ChangedFraction)
			}
			if s.DTypeBase == "F32" && s.DTypeVLA == "BF16" && !(e.FroDelta > 0) {
				t.Errorf("%s (exact): ‖ΔW‖ %g, want the BF16 storage rounding (> 0)", name, e.FroDelta)
			}
		}
	}
	if seen != len(ref.Frozen) || seen == 0 {
		t.Errorf("found %d of the %d frozen tensors", seen, len(ref.Frozen))
	}
	// The two modes differ by the base's rounding at most: by the triangle
	// inequality, |‖v−r(b)‖ − ‖v−b‖| ≤ ‖r(b)−b‖ ≤ 2⁻⁹·‖b‖ for BF16.
	for i, s := range res.Tensors {
		e := exact.Tensors[i]
		if s.DTypeVLA == "BF16" && s.DTypeBase == "F32" {
			if d := math.Abs(float64(s.FroDelta - e.FroDelta)); d > 0x1p-9*float64(e.FroBase) {
				t.Errorf("%s: ‖ΔW‖ %g at the VLA's precision vs %g exact, more than the rounding of ‖W‖ %g", s.VLA, s.FroDelta, e.FroDelta, e.FroBase)
			}
		} else if s.FroDelta != e.FroDelta {
			t.Errorf("%s: %s over %s: modes differ (%g vs %g) where no rounding applies", s.VLA, s.DTypeVLA, s.DTypeBase, s.FroDelta, e.FroDelta)
		}
	}
	for _, s := range res.Tensors {
		if strings.Contains(s.VLA, "layers.0.mlp.gate_proj") && s.ChangedFraction < 0.5 {
			t.Errorf("%s: changed_fraction %g for a fine-tuned tensor", s.VLA, s.ChangedFraction)
		}
	}
}

// The pickle holds the same base as the sharded folder: identical results.
func TestPickleBaseSameAsSafetensors(t *testing.T) {
	a := analyzeFixture(t, Options{})
	b := analyzeFixture(t, Options{}, filepath.Join(fixtures, "pi05", "base_pickle", "pytorch_model.bin"))
	if !reflect.DeepEqual(a.Tensors, b.Tensors) {
		t.Error("pickle base gives different statistics from the safetensors base")
	}
}

// Results must not depend on the number of workers, and tiny blocks (many seams,
// rows split across blocks) must agree with the reference too.
func TestBlocksAndWorkers(t *testing.T) {
	ref := loadReference(t)
	one := analyzeFixture(t, Options{Workers: 1, BlockElems: 100, Exact: true})
	many := analyzeFixture(t, Options{Workers: 7, BlockElems: 100, Exact: true})
	if !reflect.DeepEqual(one.Tensors, many.Tensors) {
		t.Error("results depend on the worker count")
	}
	checkAgainstReference(t, many, ref)
}

func TestProgressReachesTotal(t *testing.T) {
	var last Progress
	calls := 0
	analyzeFixture(t, Options{Progress: func(p Progress) { last = p; calls++ }})
	if calls == 0 || last.BytesDone != last.BytesTotal || last.BytesTotal == 0 || last.TensorsDone != last.TensorsTotal {
		t.Errorf("final progress %+v after %d calls", last, calls)
	}
}

func TestUnitsFollowPaperRules(t *testing.T) {
	res := analyzeFixture(t, Options{})
	byVLA := map[string]*TensorStats{}
	for i := range res.Tensors {
		byVLA[res.Tensors[i].VLA] = &res.Tensors[i]
	}
	const pre = "paligemma_with_expert.paligemma.model.language_model.layers.1."
	gate, q, k := byVLA[pre+"mlp.gate_proj.weight"], byVLA[pre+"self_attn.q_proj.weight"], byVLA[pre+"self_attn.k_proj.weight"]
	var ffn, heads *UnitScores
	for i := range res.Units {
		u := &res.Units[i]
		if u.Component == "llm" && u.Layer == 1 {
			if u.Kind == UnitFFN {
				ffn = u
			} else {
				heads = u
			}
		}
	}
	if ffn == nil || heads == nil {
		t.Fatalf("llm layer 1 units missing (warnings %v, geometry %v)", res.Warnings, res.Geometry)
	}
	// π0.5 default: absolute, gate row only.
	if ffn.Variant != Pi05 || ffn.Metric != Absolute || len(ffn.Scores) != 512 {
		t.Fatalf("ffn units %s/%s, %d scores", ffn.Variant, ffn.Metric, len(ffn.Scores))
	}
	for j := range 512 {
		if ffn.Scores[j] != gate.RowDelta[j] {
			t.Fatalf("ffn score %d = %g, want gate row norm %g", j, ffn.Scores[j], gate.RowDelta[j])
		}
	}
	// 4 query heads × 32, one KV head: (mean q rows + mean k rows) / 2.
	if len(heads.Scores) != 4 {
		t.Fatalf("%d heads, want 4", len(heads.Scores))
	}
	var kMean float64
	for i := range 32 {
		kMean += float64(k.RowDelta[i])
	}
	kMean /= 32
	for h := range 4 {
		var qMean float64
		for i := h * 32; i < (h+1)*32; i++ {
			qMean += float64(q.RowDelta[i])
		}
		want := (qMean/32 + kMean) / 2
		if math.Abs(float64(heads.Scores[h])-want) > 1e-6*want {
			t.Errorf("head %d score %g, want %g", h, heads.Scores[h], want)
		}
	}
	// The OpenVLA rule on the same data: relative, gate + up + down column.
	res.Units, _ = BuildUnits(res, Scoring{Metric: Relative, Variant: OpenVLA})
	up, down := byVLA[pre+"mlp.up_proj.weight"], byVLA[pre+"mlp.down_proj.weight"]
	for _, u := range res.Units {
		if u.Component == "llm" && u.Layer == 1 && u.Kind == UnitFFN {
			j := 7
			want := float64(gate.RowDelta[j])/(float64(gate.RowBase[j])+eps) + float64(up.RowDelta[j])/(float64(up.RowBase[j])+eps) +
				float64(down.ColDelta[j])/(float64(down.ColBase[j])+eps)
			if math.Abs(float64(u.Scores[j])-want) > 1e-6*want {
				t.Errorf("openvla ffn score %g, want %g", u.Scores[j], want)
			}
		}
	}
}

func BenchmarkAnalyzeFixture(b *testing.B) {
	for b.Loop() {
		analyzeFixture(b, Options{})
	}
}
