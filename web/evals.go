package web

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// EvalsPage lists an analysis's recipes and evaluation results, and plots
// success against parameters after pruning.
type EvalsPage struct {
	Analysis *store.Analysis
	Chart    *viz.Chart // nil until some result has a parameter count
	Recipes  Table
	Results  Table
	Form     *EvalForm // nil for readers who may not add results
	// ImportURL takes a CSV of many results; "" for readers who may not.
	ImportURL string
	Warnings  []string
}

// RecipeParams is a saved recipe with its parameter count after pruning, as
// resolving it against the analysis gives (Err when it does not resolve).
type RecipeParams struct {
	Recipe store.Recipe
	After  int64
	Err    string
}

// BaselineChoice is the form value and CSV word for the unpruned model.
const BaselineChoice = "baseline"

// BuildEvalsPage lays out the page. baseline is the unpruned parameter count.
func BuildEvalsPage(a *store.Analysis, recipes []RecipeParams, baseline int64, results []store.EvalResult, canEdit bool) EvalsPage {
	self := EvalsURL(a.ID)
	p := EvalsPage{Analysis: a, Results: EvalsTable(a.ID, results, self)}
	p.Recipes = Table{ID: "recipes", Title: "Recipes", Base: self, Empty: "No saved recipes yet: compose one with “Compose a pruning mask”, above.",
		Columns: []string{"recipe", "review_status", "params_after", "pruned", "updated"}}
	after := map[int64]int64{}
	for _, rp := range recipes {
		r := rp.Recipe
		params, pruned := Cell{Text: "–", Num: true}, Cell{Text: "–", Num: true}
		if rp.Err == "" {
			after[r.ID] = rp.After
			params = Cell{Text: viz.FormatCount(rp.After), Value: rp.After, Num: true}
			if baseline > 0 {
				f := float64(baseline-rp.After) / float64(baseline)
				pruned = Cell{Text: Percent(f), Value: f, Num: true}
			}
		} else {
			p.Warnings = append(p.Warnings, "Recipe "+r.Name+" does not resolve against this analysis, so it is left out of the chart: "+rp.Err)
		}
		p.Recipes.Rows = append(p.Recipes.Rows, []Cell{LinkCell(r.Name, RecipeURL(a.ID, r.ID)), Text(r.ReviewStatus), params, pruned,
			{Text: When(&r.UpdatedAt), Value: r.UpdatedAt}})
	}
	if series := EvalSeriesOf(results, after, baseline); len(series) > 0 {
		c := viz.EvalChart("chart-evals", series)
		p.Chart = &c
	}
	if canEdit {
		p.ImportURL = EvalsImportAPIURL(a.ID)
		f := EvalForm{PostURL: EvalsAPIURL(a.ID), Recipes: []Choice{{BaselineChoice, "unpruned model (baseline)"}}}
		for _, rp := range recipes {
			f.Recipes = append(f.Recipes, Choice{strconv.FormatInt(rp.Recipe.ID, 10), rp.Recipe.Name})
		}
		p.Form = &f
	}
	return p
}

// EvalSeriesOf averages results per benchmark and model: one point per
// recipe (at its parameters after pruning) and one for the unpruned model (at
// baseline). Results of recipes without a parameter count are left out.
// With several benchmarks an "average" series follows, the mean of each
// model's benchmark means, as papers report a suite's average.
func EvalSeriesOf(results []store.EvalResult, after map[int64]int64, baseline int64) []viz.EvalSeries {
	type key struct {
		bench  string
		recipe int64 // 0: the unpruned model (recipe ids start at 1)
	}
	type acc struct {
		sum float64
		n   int
	}
	sums := map[key]*acc{}
	names := map[int64]string{}
	var benches []string
	for _, e := range results {
		k := key{bench: e.Benchmark}
		if e.RecipeID != nil {
			if _, ok := after[*e.RecipeID]; !ok {
				continue
			}
			k.recipe = *e.RecipeID
			names[k.recipe] = e.RecipeName
		} else if baseline <= 0 {
			continue
		}
		if sums[k] == nil {
			sums[k] = &acc{}
			benches = append(benches, e.Benchmark)
		}
		sums[k].sum += e.SuccessRate
		sums[k].n++
	}
	slices.Sort(benches)
	benches = slices.Compact(benches)
	point := func(recipe int64, mean float64, n int) viz.EvalPoint {
		if recipe == 0 {
			return viz.EvalPoint{Label: "unpruned", Params: baseline, Success: mean, Results: n, Baseline: true}
		}
		return viz.EvalPoint{Label: names[recipe], Params: after[recipe], Success: mean, Results: n}
	}
	var out []viz.EvalSeries
	avg := map[int64]*acc{}
	for _, b := range benches {
		s := viz.EvalSeries{Benchmark: b}
		for k, a := range sums {
			if k.bench != b {
				continue
			}
			mean := a.sum / float64(a.n)
			s.Points = append(s.Points, point(k.recipe, mean, a.n))
			if avg[k.recipe] == nil {
				avg[k.recipe] = &acc{}
			}
			avg[k.recipe].sum += mean
			avg[k.recipe].n++
		}
		slices.SortFunc(s.Points, func(x, y viz.EvalPoint) int {
			return cmp.Or(cmp.Compare(x.Params, y.Params), cmp.Compare(x.Label, y.Label))
		})
		out = append(out, s)
	}
	if len(benches) > 1 {
		s := viz.EvalSeries{Benchmark: "average"}
		for r, a := range avg {
			s.Points = append(s.Points, point(r, a.sum/float64(a.n), a.n))
		}
		slices.SortFunc(s.Points, func(x, y viz.EvalPoint) int {
			return cmp.Or(cmp.Compare(x.Params, y.Params), cmp.Compare(x.Label, y.Label))
		})
		out = append(out, s)
	}
	return out
}
