package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
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
	in := web.RecipeReviewInput{Analysis: a, Recipe: rec, Editor: isEditor(r)}
	if a.Status == store.StatusDone {
		before, after, err := s.recipeParams(r, rec)
		var re *recipeError
		switch {
		case err == nil:
			in.Params = &prune.Count{Before: before, After: after}
		case errors.As(err, &re):
			in.Unresolved = re
		default:
			s.pageError(w, r, err)
			return
		}
	}
	if in.Evals, err = s.db.ListEvalResults(ctx, id, store.EvalFilter{RecipeID: &rid}); err != nil {
		s.pageError(w, r, err)
		return
	}
	if wantsTable(r) {
		writeTable(w, r, id+"-recipe-"+strconv.FormatInt(rid, 10), []web.Table{web.EvalsTable(id, in.Evals, web.RecipeURL(id, rid))})
		return
	}
	if in.History, err = s.db.ReviewHistory(ctx, rid); err != nil {
		s.pageError(w, r, err)
		return
	}
	if in.Saved, err = s.db.ListRecipes(ctx, id); err != nil {
		s.pageError(w, r, err)
		return
	}
	if in.Comments, err = s.commentThread(r, id, store.TargetRecipe, strconv.FormatInt(rid, 10), "Comments on this recipe"); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, web.RecipeReview(web.NewRecipeReviewPage(in)))
}
