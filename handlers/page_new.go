package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/web"
)

func (s *Server) pageNew(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, web.NewPage(len(s.cfg.Roots) > 0))
}
