package handlers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

func (s *Server) adminView(r *http.Request) (web.AdminUsersView, error) {
	var v web.AdminUsersView
	users, err := s.db.ListUsers(r.Context())
	if err != nil {
		return v, err
	}
	now := s.db.Now()
	for _, u := range users {
		toks, err := s.db.ListAPITokens(r.Context(), u.Name)
		if err != nil {
			return v, err
		}
		v.Users = append(v.Users, web.NewAdminUser(u, toks, now))
	}
	return v, nil
}

func (s *Server) pageAdminUsers(w http.ResponseWriter, r *http.Request) {
	v, err := s.adminView(r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, web.AdminUsersPage(v))
}

// backToAdmin redirects to the page, which shows the new state (no message
// from the URL: a crafted link could otherwise put words on an admin's page).
func backToAdmin(w http.ResponseWriter, r *http.Request, _ string) {
	http.Redirect(w, r, web.AdminUsersURL(), http.StatusSeeOther)
}

// pageAdminTokenCreate makes a token and shows its secret in the answer
// itself (never in a URL or a redirect), once.
func (s *Server) pageAdminTokenCreate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		badRequest(w, "could not read the form")
		return
	}
	days := 90
	if v := r.PostForm.Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3650 {
			badRequest(w, "days must be between 1 and 3650")
			return
		}
		days = n
	}
	name := chi.URLParam(r, "name")
	secret, tok, err := s.db.CreateAPITokenTTL(r.Context(), name, r.PostForm.Get("label"), time.Duration(days)*24*time.Hour)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.reqLog(r).Info("token created", "name", name, "token", tok.ID, "by", currentUserName(r))
	v, err := s.adminView(r)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	v.NewToken, v.For = secret, name
	s.render(w, r, http.StatusCreated, web.AdminUsersPage(v))
}

func (s *Server) pageAdminTokenRevoke(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	id, err := strconv.ParseInt(chi.URLParam(r, "tid"), 10, 64)
	if err == nil {
		err = s.db.RevokeAPIToken(r.Context(), name, id)
	} else {
		err = store.ErrNotFound
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.reqLog(r).Info("token revoked", "name", name, "token", id, "by", currentUserName(r))
	backToAdmin(w, r, "Revoked token "+strconv.FormatInt(id, 10)+" of "+name+".")
}

func (s *Server) pageAdminTokensRevokeAll(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	n, err := s.db.RevokeAllAPITokens(r.Context(), name)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.reqLog(r).Info("tokens revoked", "name", name, "count", n, "by", currentUserName(r))
	backToAdmin(w, r, "Revoked "+strconv.FormatInt(n, 10)+" tokens of "+name+".")
}

func (s *Server) pageAdminUnlock(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if err := s.db.UnlockLogins(r.Context(), name); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.reqLog(r).Info("logins unlocked", "name", name, "by", currentUserName(r))
	backToAdmin(w, r, "Unlocked the logins of "+name+".")
}
