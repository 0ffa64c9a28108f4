package handlers

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// pageEvals lists an analysis's recipes and evaluation results and plots
// success against parameters after pruning, each recipe resolved against the
// analysis for its count and the unpruned model as the reference.
func (s *Server) pageEvals(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	a, err := s.db.Get(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if a.Status != store.StatusDone {
		s.render(w, r, http.StatusConflict, web.ErrorPage("Not ready",
			"Analysis "+a.ID+" is "+string(a.Status)+": recipes and their results belong to a done analysis."))
		return
	}
	recipes, err := s.db.ListRecipes(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	var baseline int64
	if a.Summary != nil {
		baseline = a.Summary.VLAParams
	}
	resolved := make([]web.RecipeParams, 0, len(recipes))
	for i := range recipes {
		rp := web.RecipeParams{Recipe: recipes[i]}
		before, after, err := s.recipeParams(r, &recipes[i])
		var re *recipeError
		switch {
		case err == nil:
			// The resolver counts every VLA parameter before pruning: the
			// same count the unpruned point stands at.
			rp.After, baseline = after, before
		case errors.As(err, &re):
			rp.Err = re.Error()
		default:
			s.pageError(w, r, err)
			return
		}
		resolved = append(resolved, rp)
	}
	results, err := s.db.ListEvalResults(ctx, id, store.EvalFilter{})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := web.BuildEvalsPage(a, resolved, baseline, results, isEditor(r))
	if wantsTable(r) {
		writeTable(w, r, id, []web.Table{p.Recipes, p.Results})
		return
	}
	s.render(w, r, http.StatusOK, web.EvalsView(p))
}
