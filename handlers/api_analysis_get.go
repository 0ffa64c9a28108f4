package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

// analysisView is an analysis as the API shows it: the stored row plus progress.
type analysisView struct {
	*store.Analysis
	Progress float64 `json:"progress"`
}

func viewOf(a *store.Analysis) analysisView { return analysisView{Analysis: a, Progress: a.Progress()} }

func (s *Server) apiAnalysisGet(w http.ResponseWriter, r *http.Request) {
	a, err := s.db.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewOf(a))
}
