package prune

import (
	"fmt"
	"math"
	"slices"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// groups lays out a rule's module family layer by layer, with each unit's score
// for the rule's direction.
func (rs *resolver) groups(rule Rule, fam family) ([]*group, error) {
	var groups []*group
	var err error
	switch {
	case fam.component == arch.CompProjector:
		groups, err = rs.projectorGroups(rule)
	case fam.unit == analysis.UnitFFN:
		groups, err = rs.ffnGroups(rule, fam)
	default:
		groups, err = rs.headGroups(rule, fam)
	}
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		// A module the model does not have at all (an OpenVLA preset's DINOv2
		// rules on a π0.5 analysis) is a recipe for another model, not a
		// matter of unmatched tensors: say so.
		if !slices.ContainsFunc(rs.res.Tensors, func(t analysis.TensorStats) bool { return t.Component == fam.component }) {
			return nil, fmt.Errorf("rule %s: this analysis has no %s module (none of its tensors is in %s): the recipe or preset is for another model; remove the rule or pick a preset for this one",
				rule.Module, fam.component, fam.component)
		}
		return nil, fmt.Errorf("rule %s: the analysis has no %s units in %s (tensors without a base counterpart have no ΔW and cannot be ranked)",
			rule.Module, fam.unit, fam.component)
	}
	switch rule.Direction {
	case DirHighest, DirLowest:
		err = rs.attachScores(rule, fam, groups)
	case DirMagnitude:
		err = magnitudeScores(rule, groups)
	}
	if err != nil {
		return nil, err
	}
	return groups, nil
}

func shape2(t *analysis.TensorStats) (rows, cols int64, ok bool) {
	if t == nil || len(t.ShapeVLA) != 2 {
		return 0, 0, false
	}
	return t.ShapeVLA[0], t.ShapeVLA[1], true
}

// maxUnitsPerLayer bounds one layer's units: no real layer has more than a few
// tens of thousands of channels, and the index lists are int32.
const maxUnitsPerLayer = 1 << 24

func (rs *resolver) ffnGroups(rule Rule, fam family) ([]*group, error) {
	var out []*group
	for _, lt := range rs.layers[fam.component] {
		where := fmt.Sprintf("rule %s: layer %d", rule.Module, lt.layer)
		g := &group{layer: lt.layer}
		if gate := lt.byKind[arch.KindFFNGate]; gate != nil {
			up, down := lt.byKind[arch.KindFFNUp], lt.byKind[arch.KindFFNDown]
			n, _, ok := shape2(gate)
			if !ok {
				return nil, fmt.Errorf("%s: %s is not a matrix", where, gate.VLA)
			}
			if r, _, ok := shape2(up); !ok || r != n {
				return nil, fmt.Errorf("%s: gate has %d rows but up_proj is missing or of another size; FFN channels need gate, up and down", where, n)
			}
			if _, c, ok := shape2(down); !ok || c != n {
				return nil, fmt.Errorf("%s: gate has %d rows but down_proj is missing or has another number of columns", where, n)
			}
			g.n, g.rowsOf, g.colsOf = int(n), []*analysis.TensorStats{gate, up}, []*analysis.TensorStats{down}
		} else if fc1 := lt.byKind[arch.KindFFNFc1]; fc1 != nil {
			fc2 := lt.byKind[arch.KindFFNFc2]
			n, _, ok := shape2(fc1)
			if !ok {
				return nil, fmt.Errorf("%s: %s is not a matrix", where, fc1.VLA)
			}
			if _, c, ok := shape2(fc2); !ok || c != n {
				return nil, fmt.Errorf("%s: fc1 has %d rows but fc2 is missing or has another number of columns", where, n)
			}
			g.n, g.rowsOf, g.colsOf = int(n), []*analysis.TensorStats{fc1}, []*analysis.TensorStats{fc2}
		} else {
			continue
		}
		if g.n > maxUnitsPerLayer {
			return nil, fmt.Errorf("%s: %d channels, more than deltascope handles (%d)", where, g.n, maxUnitsPerLayer)
		}
		out = append(out, g)
	}
	return out, nil
}

func (rs *resolver) headGroups(rule Rule, fam family) ([]*group, error) {
	var out []*group
	for _, lt := range rs.layers[fam.component] {
		q, qkv := lt.byKind[arch.KindAttnQ], lt.byKind[arch.KindAttnQKV]
		if q == nil && qkv == nil {
			continue
		}
		where := fmt.Sprintf("rule %s: layer %d", rule.Module, lt.layer)
		geo, ok := rs.res.Geometry[fam.component]
		if !ok || geo.Heads <= 0 || geo.HeadDim <= 0 {
			return nil, fmt.Errorf("rule %s: the attention geometry of %s is unknown; set its heads", rule.Module, fam.component)
		}
		kv := max(geo.KVHeads, 1)
		if geo.Heads%kv != 0 {
			return nil, fmt.Errorf("rule %s: %d heads do not split into %d KV groups", rule.Module, geo.Heads, kv)
		}
		geo.KVHeads = kv
		hd := int64(geo.Heads) * int64(geo.HeadDim)
		h := &headLayout{geo: geo, q: q, qkv: qkv, k: lt.byKind[arch.KindAttnK], v: lt.byKind[arch.KindAttnV], o: lt.byKind[arch.KindAttnO]}
		if _, c, ok := shape2(h.o); !ok || c != hd {
			return nil, fmt.Errorf("%s: the attention output projection is missing or does not have %d columns (%s)", where, hd, geo)
		}
		if qkv != nil {
			if kv != geo.Heads {
				return nil, fmt.Errorf("%s: a fused qkv with %d KV heads of %d is not supported", where, kv, geo.Heads)
			}
			if r, _, ok := shape2(qkv); !ok || r != 3*hd {
				return nil, fmt.Errorf("%s: fused qkv %s does not have 3×%d rows (%s)", where, qkv.VLA, hd, geo)
			}
		} else {
			if r, _, ok := shape2(q); !ok || r != hd {
				return nil, fmt.Errorf("%s: q %s does not have %d rows (%s)", where, q.VLA, hd, geo)
			}
			kvRows := int64(kv) * int64(geo.HeadDim)
			for _, t := range []*analysis.TensorStats{h.k, h.v} {
				if r, _, ok := shape2(t); !ok || r != kvRows {
					return nil, fmt.Errorf("%s: k or v projection is missing or does not have %d rows (%s)", where, kvRows, geo)
				}
			}
		}
		out = append(out, &group{layer: lt.layer, n: geo.Heads, head: h})
	}
	return out, nil
}

// projectorGroups: the units are the output rows of the projector's hidden
// layers, ranked together as the authors' OpenVLA code does: fc1's rows (group
// "layer" 0, each coupled with an fc2 column) and, when an fc3 follows, fc2's
// rows (group 1, each coupled with an fc3 column). fc3's rows are the LLM's
// input width and are never units.
func (rs *resolver) projectorGroups(rule Rule) ([]*group, error) {
	fc1, fc2, fc3 := rs.proj[arch.KindProjFc1], rs.proj[arch.KindProjFc2], rs.proj[arch.KindProjFc3]
	if fc1 == nil {
		return nil, fmt.Errorf("rule %s: needs two stacked projector layers (fc1 → fc2); this model's projector has %s",
			rule.Module, map[bool]string{true: "a single layer", false: "none in the analysis"}[rs.proj[arch.KindProjLinear] != nil])
	}
	n, _, ok := shape2(fc1)
	if !ok || n > maxUnitsPerLayer {
		return nil, fmt.Errorf("rule %s: projector fc1 %s is not a matrix of at most %d rows", rule.Module, fc1.VLA, maxUnitsPerLayer)
	}
	if _, c, ok := shape2(fc2); !ok || c != n {
		return nil, fmt.Errorf("rule %s: projector fc1 has %d rows but fc2 is missing or has another number of columns", rule.Module, n)
	}
	out := []*group{{layer: 0, n: int(n), rowsOf: []*analysis.TensorStats{fc1}, colsOf: []*analysis.TensorStats{fc2}}}
	if fc3 == nil {
		return out, nil
	}
	n2, _, _ := shape2(fc2)
	if n2 > maxUnitsPerLayer {
		return nil, fmt.Errorf("rule %s: projector fc2 %s has more than %d rows", rule.Module, fc2.VLA, maxUnitsPerLayer)
	}
	if _, c, ok := shape2(fc3); !ok || c != n2 {
		return nil, fmt.Errorf("rule %s: projector fc2 has %d rows but fc3 is not a matrix of as many columns", rule.Module, n2)
	}
	return append(out, &group{layer: 1, n: int(n2), rowsOf: []*analysis.TensorStats{fc2}, colsOf: []*analysis.TensorStats{fc3}}), nil
}

// attachScores sets each group's ΔW unit scores for the rule's metric and variant.
func (rs *resolver) attachScores(rule Rule, fam family, groups []*group) error {
	sc := analysis.Scoring{Metric: analysis.Metric(rule.Metric), Variant: analysis.Variant(rule.Variant)}
	if fam.component == arch.CompProjector {
		return rs.projectorScores(rule, sc, groups)
	}
	units := rs.unitScores(sc)
	for _, g := range groups {
		s, ok := units[unitKey{fam.component, fam.unit, g.layer}]
		if !ok || len(s) != g.n {
			return fmt.Errorf("rule %s: layer %d has %d units but the analysis scored %d (are its row norms missing?)", rule.Module, g.layer, g.n, len(s))
		}
		g.scores = s
	}
	return nil
}

const eps = 1e-8

func sliceDiv(delta, base []float32, i int, m analysis.Metric) float64 {
	if m == analysis.Absolute {
		return float64(delta[i])
	}
	return float64(delta[i]) / (float64(base[i]) + eps)
}

// projectorScores: each unit's output row (fc1 row j, or fc2 row j), as the
// authors' OpenVLA code scores them; the mean variant averages it with the
// column it takes along. An empty metric follows the family default that the
// LLM's units resolved to.
func (rs *resolver) projectorScores(rule Rule, sc analysis.Scoring, groups []*group) error {
	def := familyDefault(rs.res)
	if sc.Metric == "" {
		sc.Metric = def.Metric
	}
	if sc.Variant == "" {
		sc.Variant = def.Variant
	}
	for _, g := range groups {
		rows, cols := g.rowsOf[0], g.colsOf[0]
		if len(rows.RowDelta) != g.n || len(rows.RowBase) != g.n || len(cols.ColDelta) != g.n || len(cols.ColBase) != g.n {
			return fmt.Errorf("rule %s: the analysis has no row norms for the projector's %s", rule.Module, rows.VLA)
		}
		s := make([]float32, g.n)
		for j := range g.n {
			v := sliceDiv(rows.RowDelta, rows.RowBase, j, sc.Metric)
			if sc.Variant == analysis.Mean {
				v = (v + sliceDiv(cols.ColDelta, cols.ColBase, j, sc.Metric)) / 2
			}
			s[j] = float32(v)
		}
		g.scores = s
	}
	return nil
}

// magnitudeScores sets each unit's score to the L2 norm of the base weights it
// owns: FFN gate/up (or fc1) rows and down (or fc2) columns; a head's q rows and
// o columns, plus its k/v rows when no other head shares them (no GQA), or its
// rows in each block of a fused qkv. Biases are left out.
func magnitudeScores(rule Rule, groups []*group) error {
	for _, g := range groups {
		acc := make([]float64, g.n)
		sq := func(x float32) float64 { return float64(x) * float64(x) }
		rowBase := func(t *analysis.TensorStats) ([]float32, error) {
			if len(t.RowBase) != int(t.ShapeVLA[0]) {
				return nil, fmt.Errorf("rule %s: layer %d: %s has no base row norms", rule.Module, g.layer, t.VLA)
			}
			return t.RowBase, nil
		}
		colBase := func(t *analysis.TensorStats) ([]float32, error) {
			if len(t.ColBase) != int(t.ShapeVLA[1]) {
				return nil, fmt.Errorf("rule %s: layer %d: %s has no base column norms", rule.Module, g.layer, t.VLA)
			}
			return t.ColBase, nil
		}
		if g.head == nil {
			for _, t := range g.rowsOf {
				rb, err := rowBase(t)
				if err != nil {
					return err
				}
				for j := range g.n {
					acc[j] += sq(rb[j])
				}
			}
			for _, t := range g.colsOf {
				cb, err := colBase(t)
				if err != nil {
					return err
				}
				for j := range g.n {
					acc[j] += sq(cb[j])
				}
			}
		} else {
			h := g.head
			d, H := h.geo.HeadDim, h.geo.Heads
			ob, err := colBase(h.o)
			if err != nil {
				return err
			}
			var own []*analysis.TensorStats // tensors whose rows [h·d, (h+1)·d) belong to head h alone
			var blocks int
			if h.qkv != nil {
				own, blocks = []*analysis.TensorStats{h.qkv}, 3
			} else {
				own, blocks = []*analysis.TensorStats{h.q}, 1
				if h.geo.KVHeads == H {
					own = append(own, h.k, h.v)
				}
			}
			for _, t := range own {
				rb, err := rowBase(t)
				if err != nil {
					return err
				}
				for b := range blocks {
					for hh := range H {
						for r := range d {
							acc[hh] += sq(rb[b*H*d+hh*d+r])
						}
					}
				}
			}
			for hh := range H {
				for c := range d {
					acc[hh] += sq(ob[hh*d+c])
				}
			}
		}
		g.scores = make([]float32, g.n)
		for j, v := range acc {
			g.scores[j] = float32(math.Sqrt(v))
		}
	}
	return nil
}

// familyDefault is analysis.Scoring's family default (π0.5-like models score
// absolute/pi05, the rest relative/openvla), for the projector, which
// analysis.BuildUnits does not score.
func familyDefault(res *analysis.Result) analysis.Scoring {
	pi := false
	for i := range res.Tensors {
		pi = pi || res.Tensors[i].Component == arch.CompActionExpert
	}
	for _, n := range res.VLAOnly {
		pi = pi || arch.Classify(n, nil).Component == arch.CompActionExpert
	}
	if pi {
		return analysis.Scoring{Metric: analysis.Absolute, Variant: analysis.Pi05}
	}
	return analysis.Scoring{Metric: analysis.Relative, Variant: analysis.OpenVLA}
}
