package web

import (
	"strconv"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/mdlite"
)

// ActivityView is an analysis's feed as a page shows it.
type ActivityView struct {
	AnalysisID string
	Items      []ActivityItem
}

// ActivityItem is one line of the feed. Text is plain text; HTML (comments
// only) comes from mdlite.
type ActivityItem struct {
	Kind, When, Author, Text string
	Link, LinkText           string
	HTML                     string
}

var reviewWords = map[string]string{
	store.ReviewDraft: "moved back to draft", store.ReviewInReview: "sent for review",
	store.ReviewApproved: "approved", store.ReviewRejected: "rejected",
}

// NewActivityView words each feed entry.
func NewActivityView(id string, feed []store.Activity) ActivityView {
	v := ActivityView{AnalysisID: id}
	for _, a := range feed {
		it := ActivityItem{Kind: a.Kind, When: When(&a.At), Author: AuthorName(a.Author)}
		switch {
		case a.Comment != nil:
			c := a.Comment
			it.Text = "commented on " + targetWords(c.Target, c.Key)
			if store.CheckLocalView(c.View) == nil && c.View != "" {
				it.Link, it.LinkText = c.View, "the view"
			}
			it.HTML = mdlite.Render(c.Body)
		case a.Review != nil:
			r := a.Review
			it.Text = reviewWords[r.To] + " recipe"
			it.Link, it.LinkText = RecipeURL(id, r.RecipeID), r.RecipeName
			if r.Note != "" {
				it.HTML = mdlite.Render(r.Note)
			}
		case a.Eval != nil:
			e := a.Eval
			who := "the unpruned model"
			if e.RecipeID != nil {
				who = "recipe " + e.RecipeName
				it.Link, it.LinkText = RecipeURL(id, *e.RecipeID), e.RecipeName
			}
			it.Text = "recorded " + Percent(e.SuccessRate) + " on " + e.Benchmark + " (" + strconv.FormatInt(e.Episodes, 10) + " episodes) for " + who

		case a.Action != nil:
			it.Text = a.Action.Action
			if a.Action.Target != "" {
				it.Text += " " + a.Action.Target
			}
		}
		v.Items = append(v.Items, it)
	}
	return v
}

func targetWords(kind, key string) string {
	switch kind {
	case store.TargetCell:
		return "cell " + key
	case store.TargetTensor:
		return "tensor " + key
	case store.TargetRecipe:
		return "recipe " + key
	}
	return "the analysis"
}
