package web

import (
	"strconv"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// RecipeReviewPage is a saved recipe's review page: its status with history,
// the review decisions the reader may take, its evaluation results, its
// thread, and links to the composer and to a comparison with another recipe.
type RecipeReviewPage struct {
	Analysis *store.Analysis
	Recipe   *store.Recipe
	// Params says what the recipe keeps ("7.54 B → 6.6 B, −12.5 %"); ParamsNote
	// explains a recipe that no longer resolves against its analysis.
	Params, ParamsNote string
	Review             ReviewPanel
	Evals              Table
	EvalForm           *EvalForm // nil for readers who may not add results
	Comments           CommentThread
	// Others are the analysis's other recipes, to compare with.
	Others     []Choice
	ComposeURL string
}

// RecipeReviewInput is what a handler fetched for a recipe's review page.
type RecipeReviewInput struct {
	Analysis *store.Analysis
	Recipe   *store.Recipe
	// Params are the recipe's parameter counts; nil before the analysis is
	// done, or when the recipe no longer resolves (Unresolved says why).
	Params     *prune.Count
	Unresolved error
	History    []store.ReviewEvent
	Evals      []store.EvalResult
	Saved      []store.Recipe // the analysis's saved recipes, this one included
	Comments   CommentThread
	Editor     bool // may review and add results
}

// NewRecipeReviewPage builds a saved recipe's review page.
func NewRecipeReviewPage(in RecipeReviewInput) RecipeReviewPage {
	id, rid := in.Analysis.ID, in.Recipe.ID
	p := RecipeReviewPage{Analysis: in.Analysis, Recipe: in.Recipe, ComposeURL: ComposeURL(id, rid), Params: "–",
		Review: NewReviewPanel(in.Recipe, in.History, in.Editor), Evals: EvalsTable(id, in.Evals, RecipeURL(id, rid)), Comments: in.Comments}
	switch {
	case in.Params != nil:
		before, after := in.Params.Before, in.Params.After
		p.Params = viz.FormatCount(before) + " → " + viz.FormatCount(after) + " (−" + Percent(float64(before-after)/float64(max(before, 1))) + ")"
	case in.Unresolved != nil:
		p.ParamsNote = "This recipe does not resolve against the analysis: " + in.Unresolved.Error()
	}
	if in.Editor {
		p.EvalForm = &EvalForm{PostURL: RecipeEvalsAPIURL(rid)}
	}
	for _, o := range in.Saved {
		if o.ID != rid {
			p.Others = append(p.Others, Choice{Value: strconv.FormatInt(o.ID, 10), Label: o.Name})
		}
	}
	return p
}

// Choice is one option of a select.
type Choice struct{ Value, Label string }

// CompareJSONURL is the API comparison of this recipe with the first other
// one (the form's default choice); "" when there is none.
func (p RecipeReviewPage) CompareJSONURL() string {
	if len(p.Others) == 0 {
		return ""
	}
	b, err := strconv.ParseInt(p.Others[0].Value, 10, 64)
	if err != nil {
		return ""
	}
	return RecipesCompareAPIURL(p.Recipe.ID, b)
}

// ReviewPanel is the status, its history and the possible moves.
type ReviewPanel struct {
	Status  string
	History []ReviewRow
	Actions []ReviewAction // empty when the reader may not review
	PostURL string
}

// ReviewRow is one past decision.
type ReviewRow struct{ When, Author, From, To, Note string }

// ReviewAction is a move the workflow allows from the current status.
type ReviewAction struct{ Status, Label string }

var reviewLabels = map[string]string{
	store.ReviewInReview: "Send for review", store.ReviewApproved: "Approve",
	store.ReviewRejected: "Reject", store.ReviewDraft: "Back to draft",
}

// NewReviewPanel lays out a recipe's review; canReview adds the moves.
func NewReviewPanel(r *store.Recipe, history []store.ReviewEvent, canReview bool) ReviewPanel {
	p := ReviewPanel{Status: r.ReviewStatus, PostURL: ReviewAPIURL(r.ID)}
	for _, e := range history {
		p.History = append(p.History, ReviewRow{When: When(&e.CreatedAt), Author: AuthorName(e.Author), From: e.From, To: e.To, Note: e.Note})
	}
	if canReview {
		for _, s := range store.ReviewNext(r.ReviewStatus) {
			p.Actions = append(p.Actions, ReviewAction{Status: s, Label: reviewLabels[s]})
		}
	}
	return p
}

// EvalsTable lists evaluation results; self is the page the downloads extend.
func EvalsTable(id string, rs []store.EvalResult, self string) Table {
	t := Table{ID: "evals", Title: "Evaluation results", Base: self, Empty: "No evaluation results yet.",
		Columns: []string{"recipe", "benchmark", "success_rate", "episodes", "notes", "by", "added"}}
	for i := range rs {
		e := &rs[i]
		recipe := Text("unpruned (baseline)")
		if e.RecipeID != nil {
			recipe = LinkCell(e.RecipeName, RecipeURL(id, *e.RecipeID))
		}
		t.Rows = append(t.Rows, []Cell{recipe, Text(e.Benchmark), {Text: Percent(e.SuccessRate), Value: e.SuccessRate, Num: true},
			Int(e.Episodes), Text(e.Notes), Text(AuthorName(e.Author)), {Text: When(&e.CreatedAt), Value: e.CreatedAt}})
	}
	return t
}

// EvalForm adds one result by hand.
type EvalForm struct {
	PostURL string
	// Recipes to choose from; empty on a recipe's own page (PostURL names it).
	Recipes []Choice
}

func int64Text(n int64) string { return strconv.FormatInt(n, 10) }
