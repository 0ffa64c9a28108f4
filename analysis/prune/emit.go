package prune

import (
	"fmt"
	"strings"

	"github.com/deltascope/deltascope/analysis"
)

// emit writes the pruned units of a rule into per-tensor row and column lists,
// coupled across each unit's tensors, and records the layer widths.
func (rs *resolver) emit(rule Rule, fam family, groups []*group, m *Mask) error {
	w := m.Widths[fam.component]
	if w == nil {
		w = &Widths{}
		m.Widths[fam.component] = w
	}
	maxLayer := 0
	for _, g := range groups {
		maxLayer = max(maxLayer, g.layer)
	}
	partialGroups, partialHeads := 0, 0
	pruned := false
	qOnly := fam.unit == analysis.UnitHead && !strings.HasPrefix(fam.component, "vision.") && rs.variant(rule) == analysis.Pi05
	for _, g := range groups {
		if g.head == nil {
			if w.IntermediateSize == nil {
				w.IntermediateSize = make([]int, maxLayer+1)
			}
			w.IntermediateSize[g.layer] = g.n - g.count
			if g.count == 0 {
				continue
			}
			idx := make([]int32, 0, g.count)
			for i, p := range g.pruned {
				if p {
					idx = append(idx, int32(i))
				}
			}
			for _, t := range g.rowsOf {
				if err := rs.addRows(rule, t, idx, true); err != nil {
					return err
				}
			}
			for _, t := range g.colsOf {
				if err := rs.addCols(rule, t, idx); err != nil {
					return err
				}
			}
			continue
		}

		h := g.head
		H, KV, d := h.geo.Heads, h.geo.KVHeads, h.geo.HeadDim
		per := H / KV
		if w.Heads == nil {
			w.Heads, w.KVHeads = make([]int, maxLayer+1), make([]int, maxLayer+1)
		}
		w.HeadDim = d
		fullGroups := 0
		var groupFull []bool
		if h.qkv == nil {
			groupFull = make([]bool, KV)
			for kg := range KV {
				n := 0
				for hh := kg * per; hh < (kg+1)*per; hh++ {
					if g.pruned[hh] {
						n++
					}
				}
				groupFull[kg] = n == per
				if groupFull[kg] {
					fullGroups++
				} else if n > 0 {
					partialGroups++
					partialHeads += n
				}
			}
		}
		// The authors' π0.5 code zeroes only a pruned Gemma head's q rows and
		// o_proj columns, never the shared k/v, even when every head of a layer
		// goes; their SigLIP heads (vision, no GQA) lose q, k, v and out_proj.
		keepKV := qOnly
		w.Heads[g.layer] = H - g.count
		w.KVHeads[g.layer] = KV - fullGroups
		if keepKV {
			w.KVHeads[g.layer] = KV
		}
		if h.qkv != nil {
			w.KVHeads[g.layer] = H - g.count
		}
		if g.count == 0 {
			continue
		}
		pruned = true
		// Rows of the pruned heads, ascending: head h owns [h·d, (h+1)·d).
		headRows := make([]int32, 0, g.count*d)
		for hh, p := range g.pruned {
			if p {
				for r := range d {
					headRows = append(headRows, int32(hh*d+r))
				}
			}
		}
		if err := rs.addCols(rule, h.o, headRows); err != nil {
			return err
		}
		if h.qkv != nil {
			// timm's fused [q; k; v]: the head's rows in each block.
			rows := make([]int32, 0, 3*len(headRows))
			for b := range 3 {
				for _, r := range headRows {
					rows = append(rows, int32(b*H*d)+r)
				}
			}
			if err := rs.addRows(rule, h.qkv, rows, true); err != nil {
				return err
			}
			continue
		}
		if err := rs.addRows(rule, h.q, headRows, true); err != nil {
			return err
		}
		if fullGroups > 0 && !keepKV {
			kvRows := make([]int32, 0, fullGroups*d)
			for kg, full := range groupFull {
				if full {
					for r := range d {
						kvRows = append(kvRows, int32(kg*d+r))
					}
				}
			}
			for _, t := range []*analysis.TensorStats{h.k, h.v} {
				if err := rs.addRows(rule, t, kvRows, true); err != nil {
					return err
				}
			}
		}
	}
	if qOnly && pruned {
		rs.warn("rule %s: pi05 rule: pruned heads lose their q rows and o_proj columns only; the shared k/v rows stay, as in the authors' π0.5 code",
			rule.Module)
	}
	if partialGroups > 0 && !qOnly {
		rs.warn("rule %s: %d query heads pruned in %d KV groups that keep other heads: their shared k/v rows stay (GQA/MQA)",
			rule.Module, partialHeads, partialGroups)
	}
	return nil
}

// variant is the unit rule a rule scores and cuts with: its own, or the family
// default (π0.5-like models pi05, the rest openvla).
func (rs *resolver) variant(rule Rule) analysis.Variant {
	if rule.Variant != "" {
		return analysis.Variant(rule.Variant)
	}
	return familyDefault(rs.res).Variant
}

func (rs *resolver) entry(rule Rule, t *analysis.TensorStats) (*TensorMask, error) {
	if len(t.ShapeVLA) == 0 || len(t.ShapeVLA) > 2 {
		return nil, fmt.Errorf("rule %s: tensor %q of shape %v cannot be pruned by rows and columns", rule.Module, t.VLA, t.ShapeVLA)
	}
	e := rs.masks[t.VLA]
	if e == nil {
		e = &TensorMask{Name: t.VLA, Shape: t.ShapeVLA, Rows: []int32{}, Cols: []int32{}}
		rs.masks[t.VLA] = e
	}
	return e, nil
}

// addRows records pruned rows of t and, with bias, the same entries of its bias.
func (rs *resolver) addRows(rule Rule, t *analysis.TensorStats, rows []int32, bias bool) error {
	e, err := rs.entry(rule, t)
	if err != nil {
		return err
	}
	if len(e.Rows) > 0 {
		return fmt.Errorf("rule %s: tensor %q is already pruned by another rule", rule.Module, t.VLA)
	}
	e.Rows = rows
	if !bias {
		return nil
	}
	stem, ok := strings.CutSuffix(t.VLA, "weight")
	if !ok {
		return nil
	}
	b := rs.byName[stem+"bias"]
	if b == nil {
		return nil
	}
	if len(b.ShapeVLA) != 1 || b.ShapeVLA[0] != t.ShapeVLA[0] {
		return fmt.Errorf("rule %s: bias %q has shape %v, not the %d rows of its weight", rule.Module, b.VLA, b.ShapeVLA, t.ShapeVLA[0])
	}
	return rs.addRows(rule, b, rows, false)
}

func (rs *resolver) addCols(rule Rule, t *analysis.TensorStats, cols []int32) error {
	if len(t.ShapeVLA) != 2 {
		return fmt.Errorf("rule %s: tensor %q of shape %v has no columns to prune", rule.Module, t.VLA, t.ShapeVLA)
	}
	e, err := rs.entry(rule, t)
	if err != nil {
		return err
	}
	if len(e.Cols) > 0 {
		return fmt.Errorf("rule %s: tensor %q is already pruned by another rule", rule.Module, t.VLA)
	}
	e.Cols = cols
	return nil
}
