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
	h := web.BuildHome(list, r.URL.Query().Get("q"), cps)
	if wantsTable(r) {
		writeTable(w, r, "deltascope", []web.Table{h.Analyses, h.Checkpoints})
		return
	}
	s.render(w, r, http.StatusOK, web.HomeView(h))
}
