package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

func (s *Server) apiAnalysisCancel(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := s.jobs.Cancel(r.Context(), id); err != nil {
		s.apiError(w, r, err)
		return
	}
	s.recordAction(r, id, store.ActionCancelAnalysis, "")
	a, err := s.db.Get(r.Context(), id)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(a))
}
