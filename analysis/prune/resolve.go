package prune

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// Options refine Resolve. The zero value is ready to use.
type Options struct {
	// VLATensors, when given, are every tensor of the VLA (names and shapes), so
	// that the parameter accounting places VLA-only tensors (the π0.5 action
	// expert, a tied lm_head) in their components rather than under "vla_only".
	VLATensors []arch.Named
}

// Resolve turns a recipe into a mask. It is deterministic: the same Result and
// recipe give the same mask, whatever the map iteration order or the machine.
func Resolve(res *analysis.Result, r Recipe) (*Mask, error) {
	return ResolveWith(res, r, Options{})
}

// ResolveWith is Resolve with options.
func ResolveWith(res *analysis.Result, r Recipe, opt Options) (*Mask, error) {
	if res == nil {
		return nil, fmt.Errorf("no analysis to resolve the recipe against")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	rs := newResolver(res)
	m := &Mask{Recipe: r, Widths: map[string]*Widths{}, Warnings: []string{}}
	m.Recipe.Rules = slices.Clone(r.Rules)
	for _, rule := range r.Rules {
		st, err := rs.apply(rule, m)
		if err != nil {
			return nil, err
		}
		m.Rules = append(m.Rules, st)
	}
	if m.Rules == nil {
		m.Rules = []RuleStats{}
	}
	m.Tensors = make([]TensorMask, 0, len(rs.masks))
	for _, t := range rs.masks {
		m.Tensors = append(m.Tensors, *t)
	}
	slices.SortFunc(m.Tensors, func(a, b TensorMask) int { return strings.Compare(a.Name, b.Name) })
	m.Warnings = append(m.Warnings, rs.warnings...)
	m.Params = account(res, m, opt)
	return m, nil
}

// layerTensors are the weights of one numbered layer of one component, by kind.
type layerTensors struct {
	layer  int
	byKind map[string]*analysis.TensorStats
}

type resolver struct {
	res      *analysis.Result
	byName   map[string]*analysis.TensorStats
	layers   map[string][]*layerTensors // by component, sorted by layer
	proj     map[string]*analysis.TensorStats
	scores   map[analysis.Scoring]map[unitKey][]float32
	masks    map[string]*TensorMask
	warnings []string
	keys     []uint64 // selection buffer, reused across rules
}

type unitKey struct {
	component, kind string
	layer           int
}

func newResolver(res *analysis.Result) *resolver {
	rs := &resolver{res: res, byName: make(map[string]*analysis.TensorStats, len(res.Tensors)),
		layers: map[string][]*layerTensors{}, proj: map[string]*analysis.TensorStats{},
		scores: map[analysis.Scoring]map[unitKey][]float32{}, masks: map[string]*TensorMask{}}
	byLayer := map[unitKey]*layerTensors{}
	for i := range res.Tensors {
		t := &res.Tensors[i]
		rs.byName[t.VLA] = t
		if t.Kind == arch.KindBias || t.Kind == arch.KindLayerScale {
			continue
		}
		if t.Component == arch.CompProjector {
			if _, dup := rs.proj[t.Kind]; !dup {
				rs.proj[t.Kind] = t
			}
			continue
		}
		if t.Layer < 0 {
			continue
		}
		k := unitKey{component: t.Component, layer: t.Layer}
		lt := byLayer[k]
		if lt == nil {
			lt = &layerTensors{layer: t.Layer, byKind: map[string]*analysis.TensorStats{}}
			byLayer[k] = lt
			rs.layers[t.Component] = append(rs.layers[t.Component], lt)
		}
		lt.byKind[t.Kind] = t
	}
	for _, ls := range rs.layers {
		slices.SortFunc(ls, func(a, b *layerTensors) int { return a.layer - b.layer })
	}
	return rs
}

// unitScores returns the unit scores of a scoring, reusing the Result's own
// units when they were computed with it.
func (rs *resolver) unitScores(sc analysis.Scoring) map[unitKey][]float32 {
	if got, ok := rs.scores[sc]; ok {
		return got
	}
	units := rs.res.Units
	reuse := len(units) > 0
	for _, u := range units {
		if (sc.Metric != "" && u.Metric != sc.Metric) || (sc.Variant != "" && u.Variant != sc.Variant) {
			reuse = false
			break
		}
	}
	if !reuse {
		units, _ = analysis.BuildUnits(rs.res, sc)
	}
	out := make(map[unitKey][]float32, len(units))
	for _, u := range units {
		out[unitKey{u.Component, u.Kind, u.Layer}] = u.Scores
	}
	rs.scores[sc] = out
	return out
}

// group is one layer's units of a module family, with the tensors they couple.
type group struct {
	layer     int
	n         int
	protected bool
	scores    []float32 // nil for random
	pruned    []bool
	count     int

	rowsOf []*analysis.TensorStats // one row per unit: gate, up / fc1 / projector fc1
	colsOf []*analysis.TensorStats // one column per unit: down / fc2 / projector fc2
	head   *headLayout
}

type headLayout struct {
	geo             arch.Geometry
	q, k, v, o, qkv *analysis.TensorStats
}

func (rs *resolver) apply(rule Rule, m *Mask) (RuleStats, error) {
	fam := families[rule.Module]
	st := RuleStats{Module: rule.Module, Layers: []LayerStats{}}
	groups, err := rs.groups(rule, fam)
	if err != nil {
		return st, err
	}
	if fam.unit == analysis.UnitHead && slices.Contains(rs.res.GeometryGuessed, fam.component) {
		// Heads cut along a guessed head size are not the model's heads.
		g := rs.res.Geometry[fam.component]
		rs.warn("rule %s: the attention geometry of %s (%s) is a guess; set it (--heads %s=HEADS[:KV_HEADS], or in the new-analysis form) if it is wrong",
			rule.Module, fam.component, g, fam.component)
	}
	protected := map[int]bool{}
	for _, l := range rule.Protected {
		protected[l] = true
	}
	present := map[int]bool{}
	for _, g := range groups {
		present[g.layer] = true
		g.protected = protected[g.layer]
		g.pruned = make([]bool, g.n)
		if g.protected {
			st.Protected += g.n
		} else {
			st.Units += g.n
		}
	}
	for _, l := range slices.Sorted(maps.Keys(protected)) {
		if !present[l] {
			rs.warn("rule %s: protected layer %d does not exist", rule.Module, l)
		}
	}
	if err := rs.selectUnits(rule, groups, &st); err != nil {
		return st, err
	}
	for _, g := range groups {
		st.Pruned += g.count
		ls := LayerStats{Layer: g.layer, Units: g.n, Pruned: g.count, Protected: g.protected}
		if g.n > 0 {
			ls.Fraction = float64(g.count) / float64(g.n)
		}
		st.Layers = append(st.Layers, ls)
	}
	if st.Pruned != st.Target {
		rs.warn("rule %s: round_to %d changed the pruned units from %d to %d", rule.Module, rule.RoundTo, st.Target, st.Pruned)
	}
	if rule.Ratio > 0 && st.Target == 0 && st.Units > 0 {
		rs.warn("rule %s: ratio %g of %d units prunes none", rule.Module, rule.Ratio, st.Units)
	}
	if err := rs.emit(rule, fam, groups, m); err != nil {
		return st, err
	}
	return st, nil
}

func (rs *resolver) warn(format string, args ...any) {
	rs.warnings = append(rs.warnings, fmt.Sprintf(format, args...))
}
