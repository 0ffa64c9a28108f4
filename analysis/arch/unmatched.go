package arch

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// What likely left a group of tensors unmatched (UnmatchedGroup.Cause).
const (
	// CauseVLAOwn: the VLA's own modules (π0.5's action expert, its action
	// and time projections), which no base has. Expected.
	CauseVLAOwn = "vla_own"
	// CauseMissing: the base has no tensor of the component at all, by name
	// or by shape: its files were not given (OpenVLA's Prismatic base
	// without its vision encoders).
	CauseMissing = "missing"
	// CauseRenamed: the base has them under other names; a suggested --map
	// rule pairs them.
	CauseRenamed = "renamed"
	// CauseUnpaired: both sides have tensors of the component that pair
	// neither by name nor by shape (another variant or size of the model).
	CauseUnpaired = "unpaired"
	// CausePartial: the component aligned, but for these VLA tensors.
	CausePartial = "partial"
	// CauseUnrecognised: VLA tensors of no known component.
	CauseUnrecognised = "unrecognised"
	// CauseBaseOnly: base tensors the VLA does not have.
	CauseBaseOnly = "base_only"
)

// UnmatchedGroup is the tensors of one component on one side that an
// alignment left without a counterpart, and what likely happened to them.
type UnmatchedGroup struct {
	Side      string `json:"side"` // "vla" or "base"
	Component string `json:"component"`
	Cause     string `json:"cause"`
	Count     int    `json:"count"`
	// Paired is how many of the VLA's tensors of the component did pair
	// (VLA side only).
	Paired  int    `json:"paired"`
	Example string `json:"example"`
	// Prefix (missing) is what the VLA's names of the component start with:
	// the PREFIX= a base file holding them would be given under.
	Prefix string `json:"prefix,omitempty"`
	// Rule (renamed) is the suggested rule that pairs them, BaseExample its
	// example's base name, and RulePairs how many it pairs.
	Rule        string `json:"rule,omitempty"`
	BaseExample string `json:"base_example,omitempty"`
	RulePairs   int    `json:"rule_pairs,omitempty"`
	// BaseCount (unpaired) is how many base-only tensors of the component
	// there are, and BaseExample one of them.
	BaseCount int `json:"base_count,omitempty"`
}

// ExplainUnmatched groups what an alignment left unmatched by component (the
// names classified as Classify does) and says per group what likely happened,
// from the names alone: paired are the VLA names that found a base
// counterpart (compared or not), baseOnly and vlaOnly the names left over,
// suggestions the --map rules Suggest proposed for them. VLA groups come
// first, largest first.
//
//   - an action expert (π0.5's gemma_expert, action_in/out_proj, time_mlp…)
//     is the VLA's own: expected;
//   - a component a suggested rule pairs into is named differently in the
//     base;
//   - a component with base-only tensors of its own that pair neither by name
//     nor by shape is another variant of it;
//   - a component of which nothing paired and the base has nothing is
//     missing from the base: its files were not given;
//   - otherwise the component aligned but for these.
//
// Base-only tensors a suggested rule would rename, or that belong to an
// unpaired VLA group, are told there; the rest form base groups.
func ExplainUnmatched(paired, baseOnly, vlaOnly []string, suggestions []Suggestion) []UnmatchedGroup {
	comp := func(name string) string { return Classify(name, nil).Component }
	pairedBy := map[string]int{}
	for _, n := range uniq(paired) {
		pairedBy[comp(n)]++
	}
	vlaBy := map[string][]string{}
	for _, n := range vlaOnly {
		vlaBy[comp(n)] = append(vlaBy[comp(n)], n)
	}
	// Base-only names a suggestion renames are that suggestion's; the rest
	// by their own component.
	renamedBy := map[string]Suggestion{} // VLA component → its best rule
	for _, s := range suggestions {
		c := comp(s.ExampleVLA)
		if _, ok := renamedBy[c]; !ok {
			renamedBy[c] = s
		}
	}
	baseBy := map[string][]string{}
	for _, n := range baseOnly {
		if slices.ContainsFunc(suggestions, func(s Suggestion) bool { return strings.HasPrefix(n, s.From) }) {
			continue
		}
		baseBy[comp(n)] = append(baseBy[comp(n)], n)
	}

	var out []UnmatchedGroup
	for c, names := range vlaBy {
		g := UnmatchedGroup{Side: "vla", Component: c, Count: len(names), Paired: pairedBy[c], Example: names[0]}
		s, renamed := renamedBy[c]
		switch {
		case c == CompActionExpert || c == CompActionHead:
			g.Cause = CauseVLAOwn
		case renamed:
			g.Cause, g.Rule, g.BaseExample, g.RulePairs = CauseRenamed, s.Rule, s.ExampleBase, s.Pairs
			g.Example = s.ExampleVLA
		case c == CompOther:
			g.Cause = CauseUnrecognised
		case len(baseBy[c]) > 0:
			g.Cause, g.BaseCount, g.BaseExample = CauseUnpaired, len(baseBy[c]), baseBy[c][0]
			delete(baseBy, c)
		case g.Paired == 0:
			g.Cause, g.Prefix = CauseMissing, componentPrefix(names)
		default:
			g.Cause = CausePartial
		}
		out = append(out, g)
	}
	for c, names := range baseBy {
		out = append(out, UnmatchedGroup{Side: "base", Component: c, Cause: CauseBaseOnly, Count: len(names), Example: names[0]})
	}
	slices.SortFunc(out, func(a, b UnmatchedGroup) int {
		return cmp.Or(-cmp.Compare(a.Side, b.Side), cmp.Compare(b.Count, a.Count), cmp.Compare(a.Component, b.Component))
	})
	return out
}

func uniq(names []string) []string {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	return slices.Collect(maps.Keys(set))
}

// componentPrefix is the dotted prefix all of a component's names share, less
// a last "model." or "vision_model." (the first segment of the names inside a
// Hugging Face model's own file): the PREFIX= its file goes under. Empty for
// a single name, or names that share no prefix.
func componentPrefix(names []string) string {
	if len(names) < 2 {
		return ""
	}
	p := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, p) {
			p = p[:len(p)-1]
		}
	}
	p = p[:strings.LastIndex(p, ".")+1] // whole segments
	for _, inner := range []string{"vision_model.", "model."} {
		if rest, ok := strings.CutSuffix(p, inner); ok && (rest == "" || strings.HasSuffix(rest, ".")) {
			return rest
		}
	}
	return p
}

// UnmatchedReasons says in sentences what ExplainUnmatched found, one per
// cause: the VLA's own modules in one, the components missing from the base
// in one (with the --base PREFIX=FILE each would need), one per renamed,
// unpaired or partial component, and one per group of base-only tensors.
// Each sentence stands alone (no trailing period), for a list, a line of a
// terminal or a clause of an error.
func UnmatchedReasons(groups []UnmatchedGroup) []string {
	var own, missing []UnmatchedGroup
	for _, g := range groups {
		switch g.Cause {
		case CauseVLAOwn:
			own = append(own, g)
		case CauseMissing:
			missing = append(missing, g)
		}
	}
	var out []string
	if len(missing) > 0 {
		slices.SortFunc(missing, func(a, b UnmatchedGroup) int { return cmp.Compare(a.Component, b.Component) })
		n, comps, eg := 0, []string{}, []string{}
		for _, g := range missing {
			n += g.Count
			comps = append(comps, g.Component)
			if g.Prefix != "" && len(eg) < 3 {
				eg = append(eg, "--base "+g.Prefix+"=FILE")
			}
		}
		s := fmt.Sprintf("the base has no %s tensors (%s in the VLA): add %s", strings.Join(comps, " / "), count(n, "tensor"), filesOf(comps))
		if len(eg) > 0 {
			s += " (e.g. " + strings.Join(eg, " ") + ")"
		}
		out = append(out, s)
	}
	for _, g := range groups {
		switch g.Cause {
		case CauseRenamed:
			its := "its " + g.Component + " tensors"
			if g.Component == CompOther {
				its = "some tensors"
			}
			out = append(out, fmt.Sprintf("the base names %s differently (%s unmatched; e.g. %s for %s): the suggested --map '%s' pairs %d",
				its, count(g.Count, "VLA tensor"), g.BaseExample, g.Example, g.Rule, g.RulePairs))
		case CauseUnpaired:
			out = append(out, fmt.Sprintf("%s of %s (e.g. %s) and %s of the base's (e.g. %s) pair neither by name nor by shape: the two may be different variants or sizes of the model",
				count(g.Count, "VLA tensor"), g.Component, g.Example, count(g.BaseCount, "tensor"), g.BaseExample))
		case CausePartial:
			out = append(out, fmt.Sprintf("%d of the VLA's %d %s tensors %s no base counterpart (e.g. %s): modules the VLA added, or a base of another variant",
				g.Count, g.Count+g.Paired, g.Component, have(g.Count), g.Example))
		case CauseUnrecognised:
			out = append(out, fmt.Sprintf("%s of no known component (e.g. %s) %s no base counterpart: modules the VLA added, or base files not given",
				count(g.Count, "VLA tensor"), g.Example, have(g.Count)))
		case CauseBaseOnly:
			noun := "tensor"
			if g.Component != CompOther {
				noun = g.Component + " tensor"
			}
			out = append(out, fmt.Sprintf("%s of the base (e.g. %s) %s no VLA counterpart: parts the VLA does not keep (a classifier head, a pooler), or names no rule pairs",
				count(g.Count, noun), g.Example, have(g.Count)))
		}
	}
	if len(own) > 0 {
		n, comps := 0, []string{}
		for _, g := range own {
			n += g.Count
			comps = append(comps, g.Component)
		}
		slices.Sort(comps)
		out = append(out, fmt.Sprintf("%s of %s (e.g. %s): the VLA's own modules, which have no base counterpart (expected)",
			count(n, "VLA tensor"), strings.Join(comps, " and "), own[0].Example))
	}
	return out
}

// filesOf names the files that would hold the missing components.
func filesOf(comps []string) string {
	all := func(f func(string) bool) bool {
		return !slices.ContainsFunc(comps, func(c string) bool { return !f(c) })
	}
	switch {
	case all(func(c string) bool { return strings.HasPrefix(c, "vision.") }):
		if len(comps) == 1 {
			return "the vision encoder's file"
		}
		return "the vision encoders' files"
	case all(func(c string) bool { return c == CompLLM || c == CompEmbed || c == CompLMHead }):
		return "the language model's files"
	case all(func(c string) bool { return c == CompProjector }):
		return "the projector's file"
	}
	return "the files that hold them"
}

// have agrees with a count.
func have(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

// count writes "1 tensor", "3 tensors".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
