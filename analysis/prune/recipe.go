package prune

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// Recipe is a joint pruning plan: one rule per module family. It is what the
// composer edits, what `deltascope mask --recipe` replays, and the first thing
// every export records.
type Recipe struct {
	Name  string `json:"name"`
	Note  string `json:"note,omitempty"`
	Rules []Rule `json:"rules"`
	// Where the recipe was composed: the analysis id (server), the checkpoints'
	// fingerprints and the engine version. Informative: Resolve does not check them.
	Analysis        string `json:"analysis,omitempty"`
	BaseFingerprint string `json:"base_fingerprint,omitempty"`
	VLAFingerprint  string `json:"vla_fingerprint,omitempty"`
	EngineVersion   string `json:"engine_version,omitempty"`
}

// Rule prunes a fraction of the units of one module family.
type Rule struct {
	// Module is a family of units, one of Modules().
	Module string `json:"module"`
	// Ratio of the family's eligible units to prune, in [0, 1): int(N·ratio).
	Ratio float64 `json:"ratio"`
	// Direction: DirHighest, DirLowest, DirMagnitude or DirRandom.
	Direction string `json:"direction"`
	// Seed of DirRandom; ignored otherwise.
	Seed uint64 `json:"seed,omitempty"`
	// Metric ("relative" | "absolute") and Variant ("openvla" | "pi05" | "mean")
	// of the ΔW score; empty means the family default of analysis.Scoring.
	Metric  string `json:"metric,omitempty"`
	Variant string `json:"variant,omitempty"`
	// Scope: ScopeGlobal (rank all layers together; the default when empty) or
	// ScopeLayer (rank and cut each layer on its own).
	Scope string `json:"scope,omitempty"`
	// Protected layers are never pruned and do not count in N.
	Protected []int `json:"protected,omitempty"`
	// RoundTo, when > 1, rounds each layer's kept count to a multiple of it (see
	// the package documentation for the exact rule).
	RoundTo int `json:"round_to,omitempty"`
	// AllowEmptyLayer is accepted for recipes saved by earlier versions, which
	// refused to empty a layer without it. Every rule may now empty a layer, as
	// the authors' code does; Resolve warns when one does.
	AllowEmptyLayer bool `json:"allow_empty_layer,omitempty"`
}

// Directions.
const (
	DirHighest   = "highest"   // prune the units of highest ΔW score
	DirLowest    = "lowest"    // prune the units of lowest ΔW score
	DirMagnitude = "magnitude" // prune the units of lowest base-weight norm (classic magnitude baseline)
	DirRandom    = "random"    // prune a seeded uniform sample
)

// Scopes.
const (
	ScopeGlobal = "global"
	ScopeLayer  = "layer"
)

// Module families. The strings are stable: they appear in URLs and recipes.
const (
	ModLLMHead          = "llm.attn_head"
	ModLLMFFN           = "llm.ffn_channel"
	ModDINOv2Head       = "vision.dinov2.attn_head"
	ModDINOv2FFN        = "vision.dinov2.ffn_channel"
	ModSigLIPHead       = "vision.siglip.attn_head"
	ModSigLIPFFN        = "vision.siglip.ffn_channel"
	ModProjectorFFN     = "projector.ffn_channel"
	ModActionExpertHead = "action_expert.attn_head"
	ModActionExpertFFN  = "action_expert.ffn_channel"
)

// Bounds on what a recipe may declare, so that a hostile recipe file cannot make
// Resolve allocate or loop without limit.
const (
	maxRecipeBytes       = 1 << 20
	maxRules             = 64
	maxProtectedPerRule  = 1 << 16
	maxRoundTo           = 1 << 20
	maxRecipeStringBytes = 1 << 16
)

// family is a module split into the component and unit kind of analysis.
type family struct {
	component string
	unit      string // analysis.UnitFFN or analysis.UnitHead
}

var families = map[string]family{
	ModLLMHead:          {arch.CompLLM, analysis.UnitHead},
	ModLLMFFN:           {arch.CompLLM, analysis.UnitFFN},
	ModDINOv2Head:       {arch.CompDINOv2, analysis.UnitHead},
	ModDINOv2FFN:        {arch.CompDINOv2, analysis.UnitFFN},
	ModSigLIPHead:       {arch.CompSigLIP, analysis.UnitHead},
	ModSigLIPFFN:        {arch.CompSigLIP, analysis.UnitFFN},
	ModProjectorFFN:     {arch.CompProjector, analysis.UnitFFN},
	ModActionExpertHead: {arch.CompActionExpert, analysis.UnitHead},
	ModActionExpertFFN:  {arch.CompActionExpert, analysis.UnitFFN},
}

// Modules lists the module families, sorted.
func Modules() []string {
	out := make([]string, 0, len(families))
	for m := range families {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// Validate checks every field and returns all problems found, one per line,
// each naming the rule.
func (r Recipe) Validate() error {
	var errs []error
	if len(r.Rules) > maxRules {
		errs = append(errs, fmt.Errorf("recipe has %d rules, more than the %d module families allow", len(r.Rules), maxRules))
	}
	for _, s := range []struct{ field, v string }{{"name", r.Name}, {"note", r.Note}, {"analysis", r.Analysis},
		{"base_fingerprint", r.BaseFingerprint}, {"vla_fingerprint", r.VLAFingerprint}, {"engine_version", r.EngineVersion}} {
		if len(s.v) > maxRecipeStringBytes {
			errs = append(errs, fmt.Errorf("recipe %s is %d bytes, more than %d", s.field, len(s.v), maxRecipeStringBytes))
		}
	}
	seen := map[string]int{}
	for i, rule := range r.Rules {
		where := fmt.Sprintf("rule %d (%s)", i+1, rule.Module)
		if _, ok := families[rule.Module]; !ok {
			errs = append(errs, fmt.Errorf("rule %d: unknown module %q (known: %s)", i+1, rule.Module, strings.Join(Modules(), ", ")))
		} else if j, dup := seen[rule.Module]; dup {
			errs = append(errs, fmt.Errorf("%s: module already has rule %d; merge them into one", where, j+1))
		} else {
			seen[rule.Module] = i
		}
		if math.IsNaN(rule.Ratio) || rule.Ratio < 0 || rule.Ratio >= 1 {
			errs = append(errs, fmt.Errorf("%s: ratio %v must be in [0, 1)", where, rule.Ratio))
		}
		switch rule.Direction {
		case DirHighest, DirLowest, DirMagnitude, DirRandom:
		default:
			errs = append(errs, fmt.Errorf("%s: direction %q must be one of %s, %s, %s, %s", where, rule.Direction, DirHighest, DirLowest, DirMagnitude, DirRandom))
		}
		switch analysis.Metric(rule.Metric) {
		case "", analysis.Relative, analysis.Absolute:
		default:
			errs = append(errs, fmt.Errorf("%s: metric %q must be %s or %s (or empty for the model's default)", where, rule.Metric, analysis.Relative, analysis.Absolute))
		}
		switch analysis.Variant(rule.Variant) {
		case "", analysis.OpenVLA, analysis.Pi05, analysis.Mean:
		default:
			errs = append(errs, fmt.Errorf("%s: variant %q must be %s, %s or %s (or empty for the model's default)", where, rule.Variant, analysis.OpenVLA, analysis.Pi05, analysis.Mean))
		}
		switch rule.Scope {
		case "", ScopeGlobal, ScopeLayer:
		default:
			errs = append(errs, fmt.Errorf("%s: scope %q must be %s or %s", where, rule.Scope, ScopeGlobal, ScopeLayer))
		}
		if len(rule.Protected) > maxProtectedPerRule {
			errs = append(errs, fmt.Errorf("%s: %d protected layers, more than %d", where, len(rule.Protected), maxProtectedPerRule))
		}
		for _, l := range rule.Protected {
			if l < 0 {
				errs = append(errs, fmt.Errorf("%s: protected layer %d is negative", where, l))
				break
			}
		}
		if rule.RoundTo < 0 || rule.RoundTo > maxRoundTo {
			errs = append(errs, fmt.Errorf("%s: round_to %d must be in 0..%d", where, rule.RoundTo, maxRoundTo))
		}
	}
	return errors.Join(errs...)
}

// WriteRecipe writes r as indented JSON, the form ReadRecipe reads back.
func WriteRecipe(w io.Writer, r Recipe) error {
	if r.Rules == nil {
		r.Rules = []Rule{}
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// ReadRecipe reads and validates a recipe written by WriteRecipe (or by hand).
// Unknown fields are refused, so that a misspelt "ratio" is not silently ignored.
func ReadRecipe(rd io.Reader) (Recipe, error) {
	data, err := io.ReadAll(io.LimitReader(rd, maxRecipeBytes+1))
	if err != nil {
		return Recipe{}, fmt.Errorf("reading recipe: %v", err)
	}
	if len(data) > maxRecipeBytes {
		return Recipe{}, fmt.Errorf("recipe is larger than %d bytes", maxRecipeBytes)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var r Recipe
	if err := dec.Decode(&r); err != nil {
		return Recipe{}, fmt.Errorf("recipe is not valid JSON: %v", err)
	}
	if dec.More() {
		return Recipe{}, errors.New("recipe: unexpected data after the JSON object")
	}
	if err := r.Validate(); err != nil {
		return Recipe{}, err
	}
	return r, nil
}
