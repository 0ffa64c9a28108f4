package compare

import (
	"math"
	"slices"
	"testing"

	"github.com/deltascope/deltascope/analysis"
)

func TestRanksAverageTies(t *testing.T) {
	tests := []struct {
		x    []float64
		want []float64
	}{
		{[]float64{10, 20, 20, 30}, []float64{1, 2.5, 2.5, 4}},
		{[]float64{3, 1, 2}, []float64{3, 1, 2}},
		{[]float64{7, 7, 7}, []float64{2, 2, 2}},
		{[]float64{-1, 5, -1, 5, 0}, []float64{1.5, 4.5, 1.5, 4.5, 3}},
		{nil, []float64{}},
	}
	for _, tc := range tests {
		if got := Ranks(tc.x); !slices.Equal(got, tc.want) {
			t.Errorf("Ranks(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
}

// The expected values are worked by hand in the comments.
func TestSpearman(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name  string
		x, y  []float64
		want  float64
		wantN int
	}{
		// no ties: d = (−1, 1, −1, 1, 0), Σd² = 4, ρ = 1 − 6·4 / (5·24) = 0.8
		{"classic", []float64{1, 2, 3, 4, 5}, []float64{2, 1, 4, 3, 5}, 0.8, 5},
		// x ranks (1, 2.5, 2.5, 4), y ranks (1, 3, 2, 4); deviations from 2.5:
		// Σdxdy = 2.25 + 2.25 = 4.5, Σdx² = 4.5, Σdy² = 5 → ρ = 4.5/√22.5 = √0.9
		{"ties on one side", []float64{1, 2, 2, 3}, []float64{1, 3, 2, 4}, math.Sqrt(0.9), 4},
		// ranks (1.5, 1.5, 3.5, 3.5) and (1.5, 3.5, 1.5, 3.5): Σdxdy = 1 − 1 − 1 + 1 = 0
		{"ties on both sides", []float64{1, 1, 2, 2}, []float64{1, 2, 1, 2}, 0, 4},
		{"monotone, not linear", []float64{1, 2, 3, 4}, []float64{1, 10, 100, 1000}, 1, 4},
		{"reversed", []float64{1, 2, 3}, []float64{9, 8, 7}, -1, 3},
		{"NaN pairs dropped", []float64{1, nan, 2, 3}, []float64{1, 5, 2, nan}, 1, 2},
		{"constant side", []float64{1, 2, 3}, []float64{4, 4, 4}, nan, 3},
		{"one pair", []float64{1}, []float64{2}, nan, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n := Spearman(tc.x, tc.y)
			if n != tc.wantN {
				t.Fatalf("n = %d, want %d", n, tc.wantN)
			}
			if math.IsNaN(tc.want) != math.IsNaN(got) || !math.IsNaN(got) && math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("ρ = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestKAndTopK(t *testing.T) {
	for _, tc := range []struct {
		n    int
		frac float64
		want int
	}{{100, 0.1, 10}, {19, 0.1, 1}, {5, 0.1, 1}, {0, 0.1, 0}, {10, 0, 0}, {10, 2, 10}, {10, math.NaN(), 0}} {
		if got := K(tc.n, tc.frac); got != tc.want {
			t.Errorf("K(%d, %v) = %d, want %d", tc.n, tc.frac, got, tc.want)
		}
	}
	x := []float64{0.1, 0.5, 0.5, math.NaN(), 0.3}
	for k, want := range map[int][]int{0: {}, 2: {1, 2}, 3: {1, 2, 4}, 10: {1, 2, 4, 0}, -1: {}} {
		if got := TopK(x, k); !slices.Equal(got, want) {
			t.Errorf("TopK(k=%d) = %v, want %v", k, got, want)
		}
	}
}

func TestTopKOverlap(t *testing.T) {
	a := []float64{5, 4, 3, 2, 1}
	b := []float64{1, 4, 5, 3, 2}
	// top-2 of a: {0, 1}; of b: {2, 1}; common {1}; union {0, 1, 2}
	if o := TopKOverlap(a, b, 2); o.K != 2 || o.Common != 1 || math.Abs(o.Jaccard-1.0/3) > 1e-15 {
		t.Fatalf("overlap %+v, want 1 common, Jaccard 1/3", o)
	}
	if o := TopKOverlap(a, a, 3); o.Common != 3 || o.Jaccard != 1 {
		t.Fatalf("self overlap %+v", o)
	}
	if o := TopKOverlap(a, b, 0); o.Common != 0 || !math.IsNaN(o.Jaccard) {
		t.Fatalf("k = 0: %+v, want NaN Jaccard", o)
	}
}

func TestModules(t *testing.T) {
	u := func(comp, kind string, layer int, s ...float32) analysis.UnitScores {
		return analysis.UnitScores{Component: comp, Kind: kind, Layer: layer, Scores: s}
	}
	a := []analysis.UnitScores{
		u("llm", "ffn_channel", 0, 1, 2, 3, 4),
		u("llm", "ffn_channel", 1, 5, 6, 7),
		u("llm", "attn_head", 0, 1, 2),
		u("vision.siglip", "ffn_channel", 0, 1, 2), // b has no siglip: not listed
	}
	b := []analysis.UnitScores{
		u("llm", "attn_head", 0, 2, 1),
		u("llm", "ffn_channel", 0, 1, 2, 3, 4),
		u("llm", "ffn_channel", 1, 5, 6), // one unit shorter
		u("llm", "ffn_channel", 2, 9, 9, 9),
	}
	got := Modules(a, b, 0.5)
	if len(got) != 2 {
		t.Fatalf("modules %+v, want llm ffn and heads", got)
	}
	ffn, heads := got[0], got[1]
	// Paired: layer 0 (4) + layer 1 (2): identical values → ρ = 1; top 3 equal.
	if ffn.Kind != "ffn_channel" || ffn.Layers != 2 || ffn.Units != 6 || ffn.OnlyA != 1 || ffn.OnlyB != 3 ||
		ffn.Spearman != 1 || ffn.K != 3 || ffn.Common != 3 || ffn.Jaccard != 1 {
		t.Errorf("ffn %+v", ffn)
	}
	if heads.Kind != "attn_head" || heads.Units != 2 || heads.Spearman != -1 || heads.K != 1 || heads.Common != 0 || heads.Jaccard != 0 {
		t.Errorf("heads %+v", heads)
	}
}

func BenchmarkSpearman(b *testing.B) {
	n := 32 * 11008 // OpenVLA's LLM FFN channels
	x, y := make([]float64, n), make([]float64, n)
	for i := range n {
		x[i] = float64((i * 7919) % 1009)
		y[i] = float64((i * 104729) % 997)
	}
	for b.Loop() {
		Spearman(x, y)
	}
}
