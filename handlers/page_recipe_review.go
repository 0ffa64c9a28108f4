package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
	"github.com/deltascope/deltascope/web/viz"
)

// recipeParams resolves a saved recipe against its analysis for its
// parameter counts (the resolver caches the analysis, so a page listing a
// few recipes pays the store read once).
func (s *Server) recipeParams(r *http.Request, rec *store.Recipe) (before, after int64, err error) {
	rc, err := recipeOf(rec)
	if err != nil {
		return 0, 0, err
	}
	m, _, err := s.resolve(r, rec.AnalysisID, rc)
	if err != nil {
		return 0, 0, err
	}
	return m.Params.Before, m.Params.After, nil
}

// pageRecipeReview is a saved recipe's review page: status and history,
// decisions (editors), evaluation results, its thread.
func (s *Server) pageRecipeReview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	rid, err := strconv.ParseInt(chi.URLParam(r, "rid"), 10, 64)
	var rec *store.Recipe
	if err == nil {
		rec, err = s.db.GetRecipe(ctx, rid)
	}
	if err != nil || rec.AnalysisID != id {
		// A recipe of another analysis under this one's URL is as unknown as
		// a made-up id.
		s.render(w, r, http.StatusNotFound, web.NotFoundPage("This analysis has no such recipe."))
		return
	}
	a, err := s.db.Get(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := web.RecipeReviewPage{Analysis: a, Recipe: rec, ComposeURL: web.ComposeURL(id, rid)}
	p.Params, p.ParamsNote = "–", ""
	if a.Status == store.StatusDone {
		before, after, err := s.recipeParams(r, rec)
		var re *recipeError
		switch {
		case err == nil:
			p.Params = viz.FormatCount(before) + " → " + viz.FormatCount(after) + " (−" + web.Percent(float64(before-after)/float64(max(before, 1))) + ")"
		case errors.As(err, &re):
			p.ParamsNote = "This recipe does not resolve against the analysis: " + re.Error()
		default:
			s.pageError(w, r, err)
			return
		}
	}
	hist, err := s.db.ReviewHistory(ctx, rid)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p.Review = web.NewReviewPanel(rec, hist, isEditor(r))
	evals, err := s.db.ListEvalResults(ctx, id, store.EvalFilter{RecipeID: &rid})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p.Evals = web.EvalsTable(id, evals, web.RecipeURL(id, rid))
	if wantsTable(r) {
		writeTable(w, r, id+"-recipe-"+strconv.FormatInt(rid, 10), []web.Table{p.Evals})
		return
	}
	if isEditor(r) {
		p.EvalForm = &web.EvalForm{PostURL: web.RecipeEvalsAPIURL(rid)}
	}
	others, err := s.db.ListRecipes(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for _, o := range others {
		if o.ID != rid {
			p.Others = append(p.Others, web.Choice{Value: strconv.FormatInt(o.ID, 10), Label: o.Name})
		}
	}
	if p.Comments, err = s.commentThread(r, id, store.TargetRecipe, strconv.FormatInt(rid, 10), "Comments on this recipe"); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, web.RecipeReview(p))
}
