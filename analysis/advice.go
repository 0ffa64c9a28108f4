package analysis

import (
	"maps"
	"slices"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// ComponentGeometry is the attention geometry an analysis of a pair would use
// for one component, and where it comes from: set by the user, or guessed
// (no config, no recognised model), or else read from a config or recognised
// by its shapes.
type ComponentGeometry struct {
	Component string `json:"component"`
	arch.Geometry
	Set     bool `json:"set"`
	Guessed bool `json:"guessed"`
}

// PairGeometry is what Analyze would decide about every component's attention
// geometry, from the headers and configs alone, with its warnings. Sorted by
// component.
func PairGeometry(base, vla *checkpoint.Side, overrides map[string]arch.Geometry) ([]ComponentGeometry, []string) {
	geo, guessed, warn := arch.GeometriesGuessed(pairConfigs(base, vla), vla.Named(), overrides)
	out := make([]ComponentGeometry, 0, len(geo))
	for _, c := range slices.Sorted(maps.Keys(geo)) {
		_, set := overrides[c]
		out = append(out, ComponentGeometry{Component: c, Geometry: geo[c], Set: set, Guessed: slices.Contains(guessed, c)})
	}
	if warn == nil {
		warn = []string{}
	}
	return out, warn
}

// pairConfigs are the config.json contents of both sides, the VLA's first (its
// geometry is the one measured).
func pairConfigs(base, vla *checkpoint.Side) [][]byte {
	var configs [][]byte
	for _, s := range append(append([]*checkpoint.Source{}, vla.Sources...), base.Sources...) {
		if s.Config != nil {
			configs = append(configs, s.Config)
		}
	}
	return configs
}

// SuggestMaps aligns the pair as Analyze would and returns the --map rules
// that would pair what stays unmatched (arch.Suggest).
func SuggestMaps(base, vla *checkpoint.Side, mapRules []string) ([]arch.Suggestion, error) {
	rules := make([]arch.MapRule, 0, len(mapRules))
	for _, m := range mapRules {
		r, err := arch.ParseMapRule(m)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	bn, vn := base.Named(), vla.Named()
	return arch.Suggest(bn, vn, arch.Align(bn, vn, rules)), nil
}
