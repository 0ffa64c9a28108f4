package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// analysisView is an analysis as the API shows it: the stored row plus progress.
type analysisView struct {
	*store.Analysis
	Progress float64 `json:"progress"`
}

func viewOf(a *store.Analysis) analysisView { return analysisView{Analysis: a, Progress: a.Progress()} }

// analysisDetail is one analysis as GET /api/analyses/{id} shows it: the
// view plus "origins", where each source of each side came from (web.Origin:
// kind local|upload|s3|hub, bucket and key, repository, file, revision and
// pinned commit, files with ETags once read).
type analysisDetail struct {
	analysisView
	Origins web.Origins `json:"origins"`
}

func (s *Server) apiAnalysisGet(w http.ResponseWriter, r *http.Request) {
	a, err := s.db.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	origins, err := s.origins(r, a)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, analysisDetail{analysisView: viewOf(a), Origins: origins})
}
