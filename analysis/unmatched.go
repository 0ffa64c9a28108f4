package analysis

import "github.com/deltascope/deltascope/analysis/arch"

// ExplainUnmatched groups what an analysis left unmatched by component and
// says per group what likely happened (arch.ExplainUnmatched): the VLA's own
// modules, a component missing from the base (its files not given), one the
// base names differently, and so on. It needs only the result's lists, so it
// serves a result read back from the store as well as a fresh one.
func ExplainUnmatched(res *Result) []arch.UnmatchedGroup {
	paired := make([]string, 0, len(res.Tensors)+len(res.Mismatched))
	for _, t := range res.Tensors {
		paired = append(paired, t.VLA)
	}
	for _, m := range res.Mismatched {
		paired = append(paired, m.VLA)
	}
	return arch.ExplainUnmatched(paired, res.BaseOnly, res.VLAOnly, res.Suggestions)
}
