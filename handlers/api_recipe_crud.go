package handlers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
)

// recipeBody is what a client sends to save or edit a recipe. Recipe holds a
// recipe object or {"preset": NAME}; on edit, absent fields stay as they are.
type recipeBody struct {
	Name   *string         `json:"name"`
	Note   *string         `json:"note"`
	Recipe json.RawMessage `json:"recipe"`
}

func (s *Server) decodeRecipeBody(w http.ResponseWriter, r *http.Request) (recipeBody, bool) {
	var body recipeBody
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		badRequest(w, "body: want {\"name\", \"note\", \"recipe\"}: "+err.Error())
		return body, false
	}
	return body, true
}

// canonicalRecipe validates a posted recipe and returns it as the JSON the
// store keeps, with the saved name and note folded in.
func canonicalRecipe(raw json.RawMessage, name, note string) (json.RawMessage, error) {
	rc, err := parseRecipe(raw)
	if err != nil {
		return nil, err
	}
	rc.Name, rc.Note = name, note
	return json.Marshal(rc)
}

// savedRecipe loads the recipe {rid} of the analysis {id}: a recipe of another
// analysis is not found there.
func (s *Server) savedRecipe(w http.ResponseWriter, r *http.Request) (*store.Recipe, bool) {
	rid, err := strconv.ParseInt(chi.URLParam(r, "rid"), 10, 64)
	if err != nil {
		notFound(w, "no such recipe")
		return nil, false
	}
	rec, err := s.db.GetRecipe(r.Context(), rid)
	if err == nil && rec.AnalysisID != chi.URLParam(r, "id") {
		err = store.ErrNotFound
	}
	if err != nil {
		s.apiError(w, r, err)
		return nil, false
	}
	return rec, true
}

// recipeOf is the replayable recipe of a saved record.
func recipeOf(rec *store.Recipe) (prune.Recipe, error) {
	rc, err := parseRecipe(rec.Recipe)
	if err != nil {
		return rc, &recipeError{err}
	}
	rc.Name, rc.Note = rec.Name, rec.Note
	return rc, nil
}

func (s *Server) apiRecipeList(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.ListRecipes(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recipes": list})
}

func (s *Server) apiRecipeCreate(w http.ResponseWriter, r *http.Request) {
	body, ok := s.decodeRecipeBody(w, r)
	if !ok {
		return
	}
	if body.Name == nil || body.Recipe == nil {
		badRequest(w, "a saved recipe needs a \"name\" and a \"recipe\"")
		return
	}
	note := ""
	if body.Note != nil {
		note = *body.Note
	}
	canon, err := canonicalRecipe(body.Recipe, *body.Name, note)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	rec, err := s.db.CreateRecipe(r.Context(), chi.URLParam(r, "id"), store.NewRecipe{Name: *body.Name, Note: note, Recipe: canon, CreatedBy: actorID(r)})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", r.URL.Path+"/"+strconv.FormatInt(rec.ID, 10))
	writeJSON(w, http.StatusCreated, rec)
}

func (s *Server) apiRecipeGet(w http.ResponseWriter, r *http.Request) {
	if rec, ok := s.savedRecipe(w, r); ok {
		writeJSON(w, http.StatusOK, rec)
	}
}

func (s *Server) apiRecipeUpdate(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.savedRecipe(w, r)
	if !ok {
		return
	}
	body, ok := s.decodeRecipeBody(w, r)
	if !ok {
		return
	}
	ch := store.RecipeChange{Name: body.Name, Note: body.Note, By: actorID(r)}
	if body.Recipe != nil {
		name, note := rec.Name, rec.Note
		if body.Name != nil {
			name = *body.Name
		}
		if body.Note != nil {
			note = *body.Note
		}
		canon, err := canonicalRecipe(body.Recipe, name, note)
		if err != nil {
			badRequest(w, err.Error())
			return
		}
		ch.Recipe = canon
	}
	up, err := s.db.UpdateRecipe(r.Context(), rec.ID, ch)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.recordAction(r, rec.AnalysisID, store.ActionEditRecipe, up.Name)
	writeJSON(w, http.StatusOK, up)
}

// apiRecipeDuplicate copies a recipe; the body may give the copy's name
// ({"name": ...}), or be empty for "<name> (copy)".
func (s *Server) apiRecipeDuplicate(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.savedRecipe(w, r)
	if !ok {
		return
	}
	var body struct {
		Name string `json:"name"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBody)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			badRequest(w, "body: want {\"name\"} or nothing: "+err.Error())
			return
		}
	}
	dup, err := s.db.DuplicateRecipe(r.Context(), rec.ID, body.Name, actorID(r))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, dup)
}

func (s *Server) apiRecipeDelete(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.savedRecipe(w, r)
	if !ok {
		return
	}
	if !mayDeleteRecipe(r, rec) {
		forbidden(w, "only the recipe's author or an admin may delete it")
		return
	}
	if err := s.db.DeleteRecipe(r.Context(), rec.ID); err != nil {
		s.apiError(w, r, err)
		return
	}
	s.recordAction(r, rec.AnalysisID, store.ActionDeleteRecipe, rec.Name)
	w.WriteHeader(http.StatusNoContent)
}
