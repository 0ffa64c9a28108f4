package handlers

import "net/http"

// healthz says the process serves requests.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says the database answers.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if _, err := s.db.List(r.Context(), 1); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, errorBody{"database unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
