package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

// apiRecipeEvalList is a recipe's evaluation results.
func (s *Server) apiRecipeEvalList(w http.ResponseWriter, r *http.Request) {
	rid, ok := idParam(w, r, "rid", "recipe")
	if !ok {
		return
	}
	rec, err := s.db.GetRecipe(r.Context(), rid)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	rs, err := s.db.ListEvalResults(r.Context(), rec.AnalysisID, store.EvalFilter{RecipeID: &rid})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": rs})
}

// apiEvalList is every result of an analysis: its recipes' and the unpruned
// model's (recipe_id null).
func (s *Server) apiEvalList(w http.ResponseWriter, r *http.Request) {
	rs, err := s.db.ListEvalResults(r.Context(), chi.URLParam(r, "id"), store.EvalFilter{})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": rs})
}
