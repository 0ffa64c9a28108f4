package prune

import (
	"maps"
	"slices"

	"github.com/deltascope/deltascope/analysis"
)

// ModuleUnits is one module family a rule can prune in an analysis, with its
// units layer by layer.
type ModuleUnits struct {
	Module string // a Modules() name, e.g. llm.ffn_channel
	Layers []int  // layer numbers, in the analysis's order (the projector: 0 for fc1, 1 for fc2)
	Sizes  []int  // units per layer, in Layers order
	Units  int    // all layers together
}

// PrunableModules lists, sorted by name, the module families of Modules() a
// rule can prune in res: those with unit scores, and the projector when it
// has stacked layers (its units are fc1's and fc2's rows, scored at resolve time).
func PrunableModules(res *analysis.Result) []ModuleUnits {
	known := map[string]bool{}
	for _, m := range Modules() {
		known[m] = true
	}
	byModule := map[string]*ModuleUnits{}
	for _, u := range res.Units {
		name := u.Component + "." + u.Kind
		if !known[name] {
			continue
		}
		m := byModule[name]
		if m == nil {
			m = &ModuleUnits{Module: name}
			byModule[name] = m
		}
		if slices.Contains(m.Layers, u.Layer) {
			continue // the same units under another scoring
		}
		m.Layers = append(m.Layers, u.Layer)
		m.Sizes = append(m.Sizes, len(u.Scores))
		m.Units += len(u.Scores)
	}
	// The projector's units are laid out as the resolver ranks them: fc1's rows
	// (layer 0) and, when an fc3 follows, fc2's rows (layer 1).
	if groups, err := newResolver(res).projectorGroups(Rule{Module: ModProjectorFFN}); err == nil && known[ModProjectorFFN] {
		m := &ModuleUnits{Module: ModProjectorFFN}
		for _, g := range groups {
			m.Layers, m.Sizes, m.Units = append(m.Layers, g.layer), append(m.Sizes, g.n), m.Units+g.n
		}
		byModule[ModProjectorFFN] = m
	}
	out := make([]ModuleUnits, 0, len(byModule))
	for _, name := range slices.Sorted(maps.Keys(byModule)) {
		out = append(out, *byModule[name])
	}
	return out
}
