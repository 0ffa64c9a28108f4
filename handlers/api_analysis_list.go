package handlers

import (
	"net/http"
	"strconv"
)

func (s *Server) apiAnalysisList(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 1000 {
			badRequest(w, "limit must be a number from 1 to 1000")
			return
		}
		limit = n
	}
	list, err := s.db.List(r.Context(), limit)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	views := make([]analysisView, len(list))
	for i := range list {
		views[i] = viewOf(&list[i])
	}
	writeJSON(w, http.StatusOK, map[string]any{"analyses": views})
}
