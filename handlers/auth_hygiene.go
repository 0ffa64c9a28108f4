package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// userHygieneRoutes are the admin's tools for an account's credentials
// (issue 14): lifting a login lock-out. Registered inside /api/users, which
// only admins reach.
func (s *Server) userHygieneRoutes(r chi.Router) {
	r.Post("/{name}/unlock", s.apiUserUnlock)
}

// apiUserUnlock lifts the login rate limits on an account (its user forgot
// the password and locked themselves out, or someone guessed from their
// address).
func (s *Server) apiUserUnlock(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if err := s.db.UnlockLogins(r.Context(), name); err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reqLog(r).Info("logins unlocked", "name", name, "by", currentUserName(r))
	writeJSON(w, http.StatusOK, map[string]string{"unlocked": name})
}
