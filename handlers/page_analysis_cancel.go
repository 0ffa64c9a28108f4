package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// pageAnalysisCancel is the job page's cancel form (it works without
// JavaScript): cancel, then back to the job page. crossOriginProtection
// refuses the form when another site posts it.
func (s *Server) pageAnalysisCancel(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := s.jobs.Cancel(r.Context(), id); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.recordAction(r, id, store.ActionCancelAnalysis, "")
	http.Redirect(w, r, web.AnalysisURL(id), http.StatusSeeOther)
}
