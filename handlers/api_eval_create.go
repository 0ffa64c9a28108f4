package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

// apiRecipeEvalCreate attaches one result to a recipe.
func (s *Server) apiRecipeEvalCreate(w http.ResponseWriter, r *http.Request) {
	rid, ok := idParam(w, r, "rid", "recipe")
	if !ok {
		return
	}
	var in evalBody
	if !s.decodeJSON(w, r, &in) {
		return
	}
	if len(in.Recipe) > 0 {
		badRequest(w, "recipe: the URL names it; send no \"recipe\" field here")
		return
	}
	rec, err := s.db.GetRecipe(r.Context(), rid)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	e, err := in.toNew()
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	e.RecipeID = &rid
	s.addEvals(w, r, rec.AnalysisID, []store.NewEval{e})
}

// apiEvalCreate adds one result to an analysis: for a recipe named by id or
// name, or (recipe "baseline" or absent) for the unpruned model, the
// reference point of the chart.
func (s *Server) apiEvalCreate(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var in evalBody
	if !s.decodeJSON(w, r, &in) {
		return
	}
	refs, err := s.recipeRefs(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	ref, err := jsonText(in.Recipe)
	if err != nil {
		badRequest(w, "recipe: "+err.Error())
		return
	}
	e, err := in.toNew()
	if err == nil {
		e.RecipeID, err = refs.resolve(ref)
	}
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	s.addEvals(w, r, id, []store.NewEval{e})
}

func (s *Server) addEvals(w http.ResponseWriter, r *http.Request, analysisID string, es []store.NewEval) {
	out, err := s.db.AddEvalResults(r.Context(), analysisID, es, actorID(r))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if len(out) == 1 {
		writeJSON(w, http.StatusCreated, out[0])
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"imported": len(out), "results": out})
}
