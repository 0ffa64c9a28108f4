package prune

import (
	"slices"
	"testing"

	"github.com/deltascope/deltascope/analysis/arch"
)

func TestUnitOverlap(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b map[int][]int32
		want Overlap
	}{
		{"neither prunes", nil, nil, Overlap{Jaccard: 1}},
		{"the same", map[int][]int32{0: {1, 3}, 2: {0}}, map[int][]int32{0: {1, 3}, 2: {0}}, Overlap{3, 3, 3, 3, 1}},
		{"disjoint", map[int][]int32{0: {1, 3}}, map[int][]int32{0: {0, 2}, 1: {1}}, Overlap{2, 3, 0, 5, 0}},
		{"nested", map[int][]int32{0: {2}}, map[int][]int32{0: {1, 2, 5}}, Overlap{1, 3, 1, 3, 1.0 / 3}},
		{"same index, other layer", map[int][]int32{0: {4}}, map[int][]int32{1: {4}}, Overlap{1, 1, 0, 2, 0}},
		{"one side empty", map[int][]int32{0: {4, 5}}, nil, Overlap{2, 0, 0, 2, 0}},
	} {
		if got := UnitOverlap(c.a, c.b); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// PrunedUnits reads the units back from the tensor masks: an FFN channel per
// pruned gate row, a head per block of head_dim pruned o_proj columns.
func TestPrunedUnits(t *testing.T) {
	res := fixtureResult(t)
	m := exportMask(t)
	u := PrunedUnits(m, res)
	checked := 0
	for _, ts := range res.Tensors {
		tm := m.Tensor(ts.VLA)
		if tm == nil {
			continue
		}
		switch ts.Kind {
		case arch.KindFFNGate, arch.KindFFNFc1:
			if got := u[ts.Component][UnitFFNChannel][ts.Layer]; !slices.Equal(got, tm.Rows) {
				t.Errorf("%s: channels %v, rows %v", ts.VLA, got, tm.Rows)
			}
			checked++
		case arch.KindAttnO:
			d := int32(m.Widths[ts.Component].HeadDim)
			heads := u[ts.Component][UnitAttnHead][ts.Layer]
			if d <= 0 || len(heads)*int(d) != len(tm.Cols) {
				t.Errorf("%s: %d heads of %d for %d columns", ts.VLA, len(heads), d, len(tm.Cols))
				continue
			}
			for i, c := range tm.Cols {
				if heads[i/int(d)] != c/d {
					t.Errorf("%s: column %d is not in head %d", ts.VLA, c, heads[i/int(d)])
					break
				}
			}
			checked++
		}
	}
	if checked < 4 || len(u["llm"][UnitFFNChannel]) == 0 || len(u["llm"][UnitAttnHead]) == 0 {
		t.Errorf("checked %d tensors; units %v", checked, u)
	}
}

// A mask against itself differs nowhere; a light recipe against a heavier one
// with the same ranking lies inside it.
func TestCompare(t *testing.T) {
	res := fixtureResult(t)
	resolve := func(ratio float64) *Mask {
		m, err := Resolve(res, Recipe{Name: "ffn", Rules: []Rule{
			{Module: ModLLMFFN, Ratio: ratio, Direction: DirHighest},
			{Module: ModSigLIPHead, Ratio: 0, Direction: DirHighest}, // prunes nothing: still listed
		}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	light, heavy := resolve(0.1), resolve(0.3)
	same := Compare(light, light, PrunedUnits(light, res), PrunedUnits(light, res))
	if same.Delta != 0 || len(same.Modules) != 2 {
		t.Errorf("against itself: %+v", same)
	}
	for mod, o := range same.Modules {
		if o.Jaccard != 1 || o.Both != o.PrunedA || o.PrunedA != o.PrunedB {
			t.Errorf("%s against itself: %+v", mod, o)
		}
	}
	if o := same.Modules[ModSigLIPHead]; o != (Overlap{Jaccard: 1}) {
		t.Errorf("a rule that prunes nothing: %+v", o)
	}
	c := Compare(light, heavy, PrunedUnits(light, res), PrunedUnits(heavy, res))
	if c.Delta != heavy.Params.After-light.Params.After || c.Delta >= 0 {
		t.Errorf("delta %d, want %d < 0", c.Delta, heavy.Params.After-light.Params.After)
	}
	ffn := c.Modules[ModLLMFFN]
	if ffn.PrunedA == 0 || ffn.PrunedB <= ffn.PrunedA || ffn.Both != ffn.PrunedA || ffn.Jaccard != float64(ffn.PrunedA)/float64(ffn.PrunedB) {
		t.Errorf("ffn overlap %+v: the light selection should lie inside the heavy one", ffn)
	}
	d := c.ByComponent["llm"]
	if d.Before != light.Params.ByComponent["llm"].Before || d.Delta != d.AfterB-d.AfterA || d.Delta >= 0 {
		t.Errorf("llm delta %+v", d)
	}
}
