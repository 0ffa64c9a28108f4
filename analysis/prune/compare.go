package prune

import (
	"maps"
	"slices"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// Unit kinds of UnitsPruned, as in analysis.UnitScores.Kind.
const (
	UnitFFNChannel = "ffn_channel"
	UnitAttnHead   = "attn_head"
)

// UnitsPruned lists pruned unit indices as component → kind (UnitAttnHead,
// UnitFFNChannel) → layer → ascending indices; the projector's layer is -1.
type UnitsPruned map[string]map[string]map[int][]int32

// PrunedUnits recovers the units a mask prunes from its tensor masks, with
// res the analysis it was resolved on: an FFN channel is a row of its gate /
// fc1 / projector fc1, a head the columns of its output projection divided by
// the head size.
func PrunedUnits(m *Mask, res *analysis.Result) UnitsPruned {
	classOf := make(map[string]*analysis.TensorStats, len(res.Tensors))
	for i := range res.Tensors {
		classOf[res.Tensors[i].VLA] = &res.Tensors[i]
	}
	out := UnitsPruned{}
	put := func(comp, kind string, layer int, idx []int32) {
		if len(idx) == 0 {
			return
		}
		if out[comp] == nil {
			out[comp] = map[string]map[int][]int32{}
		}
		if out[comp][kind] == nil {
			out[comp][kind] = map[int][]int32{}
		}
		out[comp][kind][layer] = idx
	}
	for i := range m.Tensors {
		tm := &m.Tensors[i]
		t := classOf[tm.Name]
		if t == nil {
			continue
		}
		switch t.Kind {
		case arch.KindFFNGate, arch.KindFFNFc1, arch.KindProjFc1:
			put(t.Component, UnitFFNChannel, t.Layer, tm.Rows)
		case arch.KindAttnO:
			d := 0
			if w := m.Widths[t.Component]; w != nil {
				d = w.HeadDim
			}
			if d <= 0 {
				d = res.Geometry[t.Component].HeadDim
			}
			if d <= 0 {
				continue
			}
			heads := make([]int32, 0, len(tm.Cols)/d)
			for _, c := range tm.Cols {
				if h := c / int32(d); len(heads) == 0 || heads[len(heads)-1] != h {
					heads = append(heads, h)
				}
			}
			put(t.Component, UnitAttnHead, t.Layer, heads)
		}
	}
	return out
}

// ComponentDelta compares one component's parameters after two masks.
type ComponentDelta struct {
	Before int64 `json:"before"` // of mask a's analysis
	AfterA int64 `json:"after_a"`
	AfterB int64 `json:"after_b"`
	Delta  int64 `json:"delta"` // after_b − after_a
}

// Overlap compares the pruned units of one module family (component.kind),
// layer by layer and index by index.
type Overlap struct {
	PrunedA int     `json:"pruned_a"`
	PrunedB int     `json:"pruned_b"`
	Both    int     `json:"both"`
	Either  int     `json:"either"`
	Jaccard float64 `json:"jaccard"` // both / either; 1 when neither prunes anything
}

// Comparison is what differs between two masks: parameters left, per
// component, and the overlap of their pruned units per module family.
type Comparison struct {
	Delta       int64                     `json:"delta"` // b's params after − a's
	ByComponent map[string]ComponentDelta `json:"by_component"`
	Modules     map[string]Overlap        `json:"modules"`
}

// Compare compares two masks (of one analysis, or of two analyses of the same
// architecture) given the units each prunes (PrunedUnits). Every module a
// rule of either names is listed, even when neither prunes anything in it.
func Compare(a, b *Mask, ua, ub UnitsPruned) Comparison {
	out := Comparison{Delta: b.Params.After - a.Params.After, ByComponent: map[string]ComponentDelta{}, Modules: map[string]Overlap{}}
	pa, pb := a.Params.ByComponent, b.Params.ByComponent
	for _, comp := range slices.Sorted(maps.Keys(pa)) {
		out.ByComponent[comp] = ComponentDelta{Before: pa[comp].Before, AfterA: pa[comp].After, AfterB: pb[comp].After, Delta: pb[comp].After - pa[comp].After}
	}
	for comp, c := range pb {
		if _, ok := pa[comp]; !ok {
			out.ByComponent[comp] = ComponentDelta{AfterB: c.After, Delta: c.After}
		}
	}
	for _, u := range []UnitsPruned{ua, ub} {
		for comp, kinds := range u {
			for kind := range kinds {
				out.Modules[comp+"."+kind] = UnitOverlap(ua[comp][kind], ub[comp][kind])
			}
		}
	}
	for _, m := range []*Mask{a, b} {
		for _, rule := range m.Rules {
			if _, ok := out.Modules[rule.Module]; !ok { // a rule that prunes nothing on either side
				out.Modules[rule.Module] = UnitOverlap(nil, nil)
			}
		}
	}
	return out
}

// UnitOverlap counts the units both, either and each of a and b prune (layer
// → ascending indices): one merge per layer.
func UnitOverlap(a, b map[int][]int32) Overlap {
	var o Overlap
	layers := map[int]bool{}
	for l, xs := range a {
		layers[l] = true
		o.PrunedA += len(xs)
	}
	for l, xs := range b {
		layers[l] = true
		o.PrunedB += len(xs)
	}
	for l := range layers {
		xs, ys := a[l], b[l]
		i, j := 0, 0
		for i < len(xs) && j < len(ys) {
			switch {
			case xs[i] == ys[j]:
				o.Both++
				i++
				j++
			case xs[i] < ys[j]:
				i++
			default:
				j++
			}
		}
	}
	o.Either = o.PrunedA + o.PrunedB - o.Both
	o.Jaccard = 1
	if o.Either > 0 {
		o.Jaccard = float64(o.Both) / float64(o.Either)
	}
	return o
}
