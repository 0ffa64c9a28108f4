package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

type commentBody struct {
	Target string `json:"target"` // analysis (default), cell, tensor or recipe
	Key    string `json:"key"`
	Body   string `json:"body"`
	// View is the page the comment is written on (path and query); the
	// store accepts local paths only.
	View string `json:"view"`
}

// apiCommentCreate adds a comment; viewers may (routes.go).
func (s *Server) apiCommentCreate(w http.ResponseWriter, r *http.Request) {
	var in commentBody
	if !s.decodeJSON(w, r, &in) {
		return
	}
	if in.Target == "" {
		in.Target = store.TargetAnalysis
	}
	c, err := s.db.CreateComment(r.Context(), chi.URLParam(r, "id"), store.NewComment{
		Target: in.Target, Key: in.Key, Body: in.Body, View: in.View, UserID: actorID(r)})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, newCommentJSON(r, c))
}
