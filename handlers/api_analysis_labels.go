package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

// labelsRequest renames or retags an analysis; a field left out stays as it is.
type labelsRequest struct {
	Name *string   `json:"name"`
	Tags *[]string `json:"tags"`
}

// apiAnalysisLabels is PATCH /api/analyses/{id}: its name and tags, the only
// things about an analysis that may change after it is created.
func (s *Server) apiAnalysisLabels(w http.ResponseWriter, r *http.Request) {
	var req labelsRequest
	if !s.decodeJSON(w, r, &req) {
		return
	}
	if req.Name == nil && req.Tags == nil {
		badRequest(w, `give "name", "tags" or both`)
		return
	}
	a, err := s.db.UpdateLabels(r.Context(), chi.URLParam(r, "id"), req.Name, req.Tags)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.recordAction(r, a.ID, store.ActionEditAnalysis, a.Name)
	writeJSON(w, http.StatusOK, viewOf(a))
}
