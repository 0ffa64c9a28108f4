package handlers

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// pageRecipeCompare compares two saved recipes (?a=RID&b=RID): the same
// comparison as the API's, drawn by web.
func (s *Server) pageRecipeCompare(w http.ResponseWriter, r *http.Request) {
	var ids [2]int64
	for i, key := range []string{"a", "b"} {
		var err error
		if ids[i], err = strconv.ParseInt(r.URL.Query().Get(key), 10, 64); err != nil {
			s.render(w, r, http.StatusBadRequest, web.ErrorPage("Choose two recipes", "Compare needs two saved recipes: ?a=RID&b=RID."))
			return
		}
	}
	c, err := s.compareRecipes(r, ids[0], ids[1])
	var re *recipeError
	switch {
	case errors.As(err, &re):
		s.render(w, r, http.StatusBadRequest, web.ErrorPage("Cannot compare", "A recipe no longer resolves: "+re.Error()))
		return
	case errors.Is(err, store.ErrConflict):
		s.render(w, r, http.StatusConflict, web.ErrorPage("Cannot compare", err.Error()))
		return
	case err != nil:
		s.pageError(w, r, err)
		return
	}
	side := func(x compareSide) web.CompareSide {
		return web.CompareSide{ID: x.ID, Name: x.Name, AnalysisID: x.AnalysisID, Before: x.Params.Before, After: x.Params.After}
	}
	s.render(w, r, http.StatusOK, web.CompareRecipesPage(web.NewCompareRecipesPage(side(c.A), side(c.B), c.Comparison)))
}
