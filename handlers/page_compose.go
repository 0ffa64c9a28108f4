package handlers

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// composeRoutes registers the composer's pages (top level, beside pageRoutes).
//
//	GET /analyses/{id}/compose[?recipe=RID]   compose a recipe, or edit a saved one
//	GET /recipes/compare?a=RID&b=RID          compare two saved recipes
func (s *Server) composeRoutes(r chi.Router) {
	r.Get("/analyses/{id}/compose", s.pageCompose)
	r.Get("/recipes/compare", s.pageRecipeCompare)
}

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
	data := web.ComposeData{
		AnalysisID: id, Modules: composeModules(b.res), Presets: []web.ComposePreset{}, Recipes: []web.ComposeRecipeRef{},
		PageURL: web.ComposeURL(id, 0),
		API: web.ComposeAPI{Resolve: "/api/analyses/" + url.PathEscape(id) + "/resolve",
			Recipes: "/api/analyses/" + url.PathEscape(id) + "/recipes",
			Export:  "/api/analyses/" + url.PathEscape(id) + "/export"},
	}
	present := map[string]bool{}
	for _, m := range data.Modules {
		present[m.Module] = true
	}
	var start *prune.Recipe
	for _, name := range prune.Presets() {
		rc, err := prune.Preset(name)
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		raw, _ := json.Marshal(rc)
		data.Presets = append(data.Presets, web.ComposePreset{Name: name, Recipe: raw})
		if start == nil && slices.IndexFunc(rc.Rules, func(x prune.Rule) bool { return !present[x.Module] }) < 0 {
			start = &rc // the first preset that fits this model
		}
	}
	list, err := s.db.ListRecipes(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for _, rec := range list {
		data.Recipes = append(data.Recipes, web.ComposeRecipeRef{ID: rec.ID, Name: rec.Name})
	}

	switch q := r.URL.Query().Get("recipe"); {
	case q != "":
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
		data.RecipeID, data.Name, data.Note = rec.ID, rec.Name, rec.Note
		data.Recipe, _ = json.Marshal(rc)
	case start != nil:
		data.Name, data.Note = start.Name, start.Note
		data.Recipe, _ = json.Marshal(start)
	default:
		rc := prune.Recipe{Name: "recipe", Rules: []prune.Rule{}}
		if len(data.Modules) > 0 {
			rc.Rules = append(rc.Rules, prune.Rule{Module: data.Modules[0].Module, Ratio: 0.1, Direction: prune.DirHighest, Scope: prune.ScopeGlobal})
		}
		data.Name = rc.Name
		data.Recipe, _ = json.Marshal(rc)
	}
	s.render(w, r, http.StatusOK, web.ComposePage(web.ComposeView{Analysis: a, Data: data}))
}

// composeModules lists the module families a rule can prune in this analysis.
func composeModules(res *analysis.Result) []web.ComposeModule {
	mods := prune.PrunableModules(res)
	out := make([]web.ComposeModule, len(mods))
	for i, m := range mods {
		out[i] = web.ComposeModule{Module: m.Module, Layers: m.Layers, Sizes: m.Sizes, Units: m.Units}
	}
	return out
}

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
	v := web.CompareView{
		A: web.CompareSide{ID: c.A.ID, Name: c.A.Name, AnalysisID: c.A.AnalysisID, Before: c.A.Params.Before, After: c.A.Params.After},
		B: web.CompareSide{ID: c.B.ID, Name: c.B.Name, AnalysisID: c.B.AnalysisID, Before: c.B.Params.Before, After: c.B.Params.After},
	}
	for _, comp := range slices.Sorted(maps.Keys(c.ByComponent)) {
		d := c.ByComponent[comp]
		v.Components = append(v.Components, web.CompareComponent{Component: comp, Before: d.Before, AfterA: d.AfterA, AfterB: d.AfterB})
	}
	for _, mod := range slices.Sorted(maps.Keys(c.Modules)) {
		o := c.Modules[mod]
		v.Modules = append(v.Modules, web.CompareModule{Module: mod, PrunedA: o.PrunedA, PrunedB: o.PrunedB, Both: o.Both, Either: o.Either, Jaccard: o.Jaccard})
	}
	s.render(w, r, http.StatusOK, web.CompareRecipesPage(v))
}
