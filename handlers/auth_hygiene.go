package handlers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
)

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

// apiTokenList lists an account's tokens: label, creation, last use, expiry,
// revocation. Secrets are never stored, so never shown.
func (s *Server) apiTokenList(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if _, err := s.db.GetUser(r.Context(), name); err != nil {
		s.apiError(w, r, err)
		return
	}
	toks, err := s.db.ListAPITokens(r.Context(), name)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": toks})
}

type tokenCreateRequest struct {
	Label string `json:"label"`
	// Days is the token's lifetime (default 90); Never makes it not expire.
	Days  int  `json:"days"`
	Never bool `json:"never"`
}

// apiTokenCreate makes a token and shows its secret, once.
func (s *Server) apiTokenCreate(w http.ResponseWriter, r *http.Request) {
	var req tokenCreateRequest
	if r.ContentLength != 0 && !s.decodeStrict(w, r, &req) {
		return
	}
	if req.Days < 0 || req.Days > 3650 {
		badRequest(w, "days must be between 1 and 3650 (or send never: true)")
		return
	}
	ttl := store.DefaultTokenTTL
	if req.Days > 0 {
		ttl = time.Duration(req.Days) * 24 * time.Hour
	}
	if req.Never {
		ttl = 0
	}
	name := chi.URLParam(r, "name")
	secret, tok, err := s.db.CreateAPITokenTTL(r.Context(), name, req.Label, ttl)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reqLog(r).Info("token created", "name", name, "token", tok.ID, "by", currentUserName(r))
	writeJSON(w, http.StatusCreated, map[string]any{"token": secret, "info": tok})
}

func (s *Server) apiTokenRevoke(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(chi.URLParam(r, "tid"), 10, 64)
	if err != nil {
		notFound(w, "no such token")
		return
	}
	name := chi.URLParam(r, "name")
	if err := s.db.RevokeAPIToken(r.Context(), name, id); err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reqLog(r).Info("token revoked", "name", name, "token", id, "by", currentUserName(r))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiTokenRevokeAll(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	n, err := s.db.RevokeAllAPITokens(r.Context(), name)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.reqLog(r).Info("tokens revoked", "name", name, "count", n, "by", currentUserName(r))
	writeJSON(w, http.StatusOK, map[string]any{"revoked": n})
}
