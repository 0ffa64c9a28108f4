package handlers

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

// defaultActivity is how many feed entries a request gets unless it asks.
const defaultActivity = 100

// apiActivity is an analysis's feed: comments, review decisions of its
// recipes and evaluation results, newest first (?limit=, at most 500).
func (s *Server) apiActivity(w http.ResponseWriter, r *http.Request) {
	limit := defaultActivity
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxActivity {
			badRequest(w, "limit: a whole number from 1 to "+strconv.Itoa(store.MaxActivity))
			return
		}
		limit = n
	}
	feed, err := s.db.ActivityFeed(r.Context(), chi.URLParam(r, "id"), limit)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"activity": feed})
}
