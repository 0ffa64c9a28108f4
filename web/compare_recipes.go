package web

import (
	"maps"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/web/viz"
)

// CompareSide is one recipe of a comparison.
type CompareSide struct {
	ID         int64
	Name       string
	AnalysisID string
	Before     int64
	After      int64
}

// CompareComponent is one component's parameters after each recipe.
type CompareComponent struct {
	Component      string
	Before         int64
	AfterA, AfterB int64
}

// CompareModule is the overlap of two recipes' pruned units in one module.
type CompareModule struct {
	Module                         string
	PrunedA, PrunedB, Both, Either int
	Jaccard                        float64
}

// CompareView is the comparison page.
type CompareView struct {
	A, B       CompareSide
	Components []CompareComponent
	Modules    []CompareModule
}

// NewCompareRecipesPage builds the comparison of two saved recipes from
// prune.Compare's result: components and modules sorted by name.
func NewCompareRecipesPage(a, b CompareSide, c prune.Comparison) CompareView {
	v := CompareView{A: a, B: b}
	for _, comp := range slices.Sorted(maps.Keys(c.ByComponent)) {
		d := c.ByComponent[comp]
		v.Components = append(v.Components, CompareComponent{Component: comp, Before: d.Before, AfterA: d.AfterA, AfterB: d.AfterB})
	}
	for _, mod := range slices.Sorted(maps.Keys(c.Modules)) {
		o := c.Modules[mod]
		v.Modules = append(v.Modules, CompareModule{Module: mod, PrunedA: o.PrunedA, PrunedB: o.PrunedB, Both: o.Both, Either: o.Either, Jaccard: o.Jaccard})
	}
	return v
}

func signed(n int64) string {
	if n > 0 {
		return "+" + viz.FormatCount(n)
	}
	if n < 0 {
		return "−" + viz.FormatCount(-n)
	}
	return "0"
}

func percentOf(n, of int64) string {
	if of <= 0 {
		return "–"
	}
	return strconv.FormatFloat(100*float64(n)/float64(of), 'f', 2, 64) + " %"
}
