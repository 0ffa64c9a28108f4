package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/web"
)

// homeListLimit bounds the analyses the home page lists.
const homeListLimit = 500

func (s *Server) pageHome(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.List(r.Context(), homeListLimit)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	cps, err := s.db.ListCheckpoints(r.Context(), homeListLimit)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	t, ct := web.AnalysesTable(list), web.CheckpointsTable(cps)
	if wantsTable(r) {
		writeTable(w, r, "deltascope", []web.Table{t, ct})
		return
	}
	s.render(w, r, http.StatusOK, web.HomePageWith(t, web.AnalysisChoices(list), ct))
}
