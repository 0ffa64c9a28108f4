package handlers

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// pageCompose fetches what the composer needs (the analysis, its resolved
// result, its saved recipes, the recipe to edit) and web builds the page.
func (s *Server) pageCompose(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	a, err := s.db.Get(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if a.Status != store.StatusDone {
		s.render(w, r, http.StatusConflict, web.ErrorPage("Not ready to compose",
			"Analysis "+a.ID+" is "+string(a.Status)+": recipes resolve against its result, once it is done."))
		return
	}
	b, err := s.recipeState().cache.get(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	list, err := s.db.ListRecipes(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	var edit *web.ComposeEdit
	if q := r.URL.Query().Get("recipe"); q != "" {
		rid, err := strconv.ParseInt(q, 10, 64)
		var rec *store.Recipe
		if err == nil {
			rec, err = s.db.GetRecipe(ctx, rid)
		}
		if err == nil && rec.AnalysisID != id {
			err = store.ErrNotFound
		}
		if err != nil {
			s.render(w, r, http.StatusNotFound, web.NotFoundPage("This analysis has no saved recipe "+q+"."))
			return
		}
		rc, err := recipeOf(rec)
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		edit = &web.ComposeEdit{ID: rec.ID, Recipe: rc}
	}
	v, err := web.NewComposePage(a, prune.PrunableModules(b.res), list, edit)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, web.ComposePage(v))
}
