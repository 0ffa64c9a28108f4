package web

import (
	"fmt"
	"maps"
	"slices"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/store"
)

// unmatchedCount is what the banner counts: tensors with no counterpart, and
// names several tensors could match.
func (o Overview) unmatchedCount() int { return o.BaseOnly + o.VLAOnly + o.Ambiguous }

// unmatchedText spells the banner's counts out.
func (o Overview) unmatchedText() string {
	s := fmt.Sprintf("%d only in the base, %d only in the VLA", o.BaseOnly, o.VLAOnly)
	if o.Ambiguous > 0 {
		s += fmt.Sprintf(", %d ambiguous", o.Ambiguous)
	}
	return s + "."
}

// unmatchedReasons explains, from the stored lists, what left tensors
// unmatched: the same sentences as the CLI's stderr summary.
func unmatchedReasons(in OverviewInput, al *analysis.Result) []string {
	if len(al.BaseOnly)+len(al.VLAOnly) == 0 {
		return nil
	}
	var sugg []arch.Suggestion
	if in.Analysis.Advice != nil {
		sugg = in.Analysis.Advice.Suggestions
	}
	return arch.UnmatchedReasons(analysis.ExplainUnmatched(&analysis.Result{Tensors: in.Tensors, Mismatched: al.Mismatched,
		BaseOnly: al.BaseOnly, VLAOnly: al.VLAOnly, Suggestions: sugg}))
}

// suggestions are the analysis's suggested --map rules (none recorded: none).
func (o Overview) suggestions() []arch.Suggestion {
	if o.Analysis.Advice == nil {
		return nil
	}
	return o.Analysis.Advice.Suggestions
}

// PrecisionText says how an analysis subtracted its pairs.
func PrecisionText(req store.AnalysisRequest) string {
	if req.Exact {
		return "exact: full-precision subtraction"
	}
	return "at the VLA's precision: each base value rounded to its VLA tensor's dtype"
}

// GeometryRow is one component's attention geometry as the overview shows it.
type GeometryRow struct {
	Component, Layout, Source string
}

// GeometryRows lists the geometry an analysis used, with where it came from:
// set in the request, guessed, or found (config or a recognised model).
func GeometryRows(a *store.Analysis) []GeometryRow {
	if a.Summary == nil {
		return nil
	}
	var guessed []string
	if a.Advice != nil {
		guessed = a.Advice.GeometryGuessed
	}
	var out []GeometryRow
	for _, c := range slices.Sorted(maps.Keys(a.Summary.Geometry)) {
		g := a.Summary.Geometry[c]
		src := "found"
		switch _, set := a.Request.Geometry[c]; {
		case set:
			src = "set"
		case slices.Contains(guessed, c):
			src = "guessed"
		}
		out = append(out, GeometryRow{Component: c, Layout: fmt.Sprintf("%d heads × %d, %d KV", g.Heads, g.HeadDim, g.KVHeads), Source: src})
	}
	return out
}
