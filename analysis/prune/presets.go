package prune

import (
	"fmt"
	"slices"
	"strings"

	"github.com/deltascope/deltascope/analysis"
)

// presetLevels are the paper's Table 12 (DESIGN.md, "Paper presets"): per level,
// the ratio and direction of each module family. The projector is protected,
// which here simply means it has no rule; DINOv2 has no rule for π0.5, which
// has no DINOv2.
type presetLevel struct {
	name  string
	rules []Rule
}

func hi(module string, ratio float64) Rule {
	return Rule{Module: module, Ratio: ratio, Direction: DirHighest}
}

func lo(module string, ratio float64) Rule {
	return Rule{Module: module, Ratio: ratio, Direction: DirLowest}
}

var presetTable = []presetLevel{
	{"openvla-light", []Rule{hi(ModLLMHead, 0.125), hi(ModLLMFFN, 0.1), hi(ModSigLIPHead, 0.125), lo(ModSigLIPFFN, 0.1), lo(ModDINOv2Head, 0.0625), hi(ModDINOv2FFN, 0.1)}},
	{"openvla-moderate", []Rule{hi(ModLLMHead, 0.125), hi(ModLLMFFN, 0.2), hi(ModSigLIPHead, 0.125), lo(ModSigLIPFFN, 0.1), lo(ModDINOv2Head, 0.0625), hi(ModDINOv2FFN, 0.1)}},
	{"openvla-aggressive", []Rule{hi(ModLLMHead, 0.125), hi(ModLLMFFN, 0.3), hi(ModSigLIPHead, 0.125), lo(ModSigLIPFFN, 0.1), lo(ModDINOv2Head, 0.0625), hi(ModDINOv2FFN, 0.1)}},
	{"pi05-light", []Rule{hi(ModLLMHead, 0.2), hi(ModLLMFFN, 0.2), hi(ModSigLIPHead, 0.2), hi(ModSigLIPFFN, 0.4)}},
	{"pi05-moderate", []Rule{hi(ModLLMHead, 0.2), hi(ModLLMFFN, 0.3), hi(ModSigLIPHead, 0.2), hi(ModSigLIPFFN, 0.2)}},
	{"pi05-aggressive", []Rule{hi(ModLLMHead, 0.2), hi(ModLLMFFN, 0.5), hi(ModSigLIPHead, 0.2), hi(ModSigLIPFFN, 0.2)}},
}

// Presets lists the built-in recipes: the paper's Table 12 for OpenVLA and π0.5.
func Presets() []string {
	out := make([]string, len(presetTable))
	for i, p := range presetTable {
		out[i] = p.name
	}
	return out
}

// Preset returns a built-in recipe. OpenVLA presets score as the authors'
// OpenVLA code does (relative ΔW, OpenVLA unit rule), π0.5 presets as their
// π0.5 code (absolute ΔW, π0.5 unit rule); every rule ranks globally across layers.
func Preset(name string) (Recipe, error) {
	i := slices.IndexFunc(presetTable, func(p presetLevel) bool { return p.name == name })
	if i < 0 {
		return Recipe{}, fmt.Errorf("unknown preset %q (known: %s)", name, strings.Join(Presets(), ", "))
	}
	p := presetTable[i]
	metric, variant, model := analysis.Relative, analysis.OpenVLA, "OpenVLA"
	if strings.HasPrefix(name, "pi05-") {
		metric, variant, model = analysis.Absolute, analysis.Pi05, "π0.5"
	}
	r := Recipe{Name: name, Note: fmt.Sprintf("Paper Table 12, %s %s: %s ΔW, %s unit scores, global ranking, projector protected.",
		model, strings.TrimPrefix(strings.TrimPrefix(name, "openvla-"), "pi05-"), metric, variant)}
	for _, rule := range p.rules {
		rule.Metric, rule.Variant, rule.Scope = string(metric), string(variant), ScopeGlobal
		r.Rules = append(r.Rules, rule)
	}
	return r, nil
}
