package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/store"
)

// apiAnalysisUnits lists per-channel and per-head scores, filterable by
// component and kind (ffn_channel, attn_head).
func (s *Server) apiAnalysisUnits(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	us, err := s.db.Units(r.Context(), chi.URLParam(r, "id"), store.UnitFilter{Component: q.Get("component"), Kind: q.Get("kind")})
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if us == nil {
		us = []analysis.UnitScores{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"units": us})
}
