package prune

import (
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// The π0.5 fixture's prunable families, with their units per layer as the
// analysis scored them: every family a module of Modules(), layers counted
// once even when several scorings exist.
func TestPrunableModules(t *testing.T) {
	res := fixtureResult(t)
	mods := PrunableModules(res)
	if len(mods) == 0 || !slices.IsSortedFunc(mods, func(a, b ModuleUnits) int { return strings.Compare(a.Module, b.Module) }) {
		t.Fatalf("modules not sorted or empty: %+v", mods)
	}
	for _, m := range mods {
		if !slices.Contains(Modules(), m.Module) {
			t.Errorf("%s is not a module a rule can name", m.Module)
		}
		sum := 0
		for _, n := range m.Sizes {
			sum += n
		}
		if len(m.Layers) != len(m.Sizes) || sum != m.Units || m.Units == 0 {
			t.Errorf("%s: layers %v, sizes %v, units %d", m.Module, m.Layers, m.Sizes, m.Units)
		}
		seen := map[int]bool{}
		for _, l := range m.Layers {
			if seen[l] {
				t.Errorf("%s: layer %d twice", m.Module, l)
			}
			seen[l] = true
		}
	}
	i := slices.IndexFunc(mods, func(m ModuleUnits) bool { return m.Module == ModLLMFFN })
	if i < 0 {
		t.Fatal("no llm.ffn_channel")
	}
	for j, l := range mods[i].Layers {
		for _, u := range res.Units {
			if u.Component == "llm" && u.Kind == "ffn_channel" && u.Layer == l && len(u.Scores) != mods[i].Sizes[j] {
				t.Errorf("llm ffn layer %d: %d units, scored %d", l, mods[i].Sizes[j], len(u.Scores))
			}
		}
	}
}

// The projector has no unit scores: its units are fc1's rows (layer 0) and,
// when an fc3 follows, fc2's rows (layer 1), ranked together by the resolver.
func TestPrunableModulesProjector(t *testing.T) {
	fc := func(kind string, shape ...int64) analysis.TensorStats {
		return analysis.TensorStats{VLA: "projector." + kind + ".weight", Component: arch.CompProjector, Kind: kind, ShapeVLA: shape}
	}
	for _, c := range []struct {
		tensors []analysis.TensorStats
		layers  []int
		sizes   []int
	}{
		{[]analysis.TensorStats{fc(arch.KindProjFc1, 96, 32), fc(arch.KindProjFc2, 40, 96), fc(arch.KindProjFc3, 40, 40)}, []int{0, 1}, []int{96, 40}},
		{[]analysis.TensorStats{fc(arch.KindProjFc1, 96, 32), fc(arch.KindProjFc2, 40, 96)}, []int{0}, []int{96}},
	} {
		got := PrunableModules(&analysis.Result{Tensors: c.tensors})
		if len(got) != 1 || got[0].Module != ModProjectorFFN || !slices.Equal(got[0].Layers, c.layers) || !slices.Equal(got[0].Sizes, c.sizes) {
			t.Errorf("%d projector layers: got %+v, want layers %v sizes %v", len(c.tensors), got, c.layers, c.sizes)
		}
	}
	if got := PrunableModules(&analysis.Result{Tensors: []analysis.TensorStats{fc(arch.KindProjFc1, 96, 32)}}); len(got) != 0 {
		t.Errorf("fc1 without the fc2 its units cut into: %+v", got)
	}
	if got := PrunableModules(&analysis.Result{}); len(got) != 0 {
		t.Errorf("an empty analysis: %+v", got)
	}
}
