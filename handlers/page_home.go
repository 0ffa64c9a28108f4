package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/store"
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
	// Each row's origins: the places read, for the done ones in one query
	// (no files: the list shows no ETags).
	byID := make(map[string]*store.Analysis, len(list))
	var done []string
	for i := range list {
		byID[list[i].ID] = &list[i]
		if list[i].Status == store.StatusDone {
			done = append(done, list[i].ID)
		}
	}
	recs, err := s.db.Sources(r.Context(), done, false)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for i := range h.Rows {
		if a := byID[h.Rows[i].ID]; a != nil {
			o := s.buildOrigins(a, recs[a.ID])
			h.Rows[i].BaseOrigins, h.Rows[i].VLAOrigins = o.Base, o.VLA
		}
	}
	s.render(w, r, http.StatusOK, web.HomeView(h))
}
