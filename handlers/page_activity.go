package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/web"
)

// pageActivity is an analysis's feed, newest first.
func (s *Server) pageActivity(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	feed, err := s.db.ActivityFeed(r.Context(), id, defaultActivity)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, web.ActivityPage(web.NewActivityView(id, feed)))
}
