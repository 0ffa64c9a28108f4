package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// maxLoginForm bounds the login form body: a name, a password and a path.
const maxLoginForm = 16 << 10

// loginView is the page's view model, built in web (web.LoginView).
type loginView = web.LoginView

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if !s.cfg.Auth.accounts() || currentPrincipal(r) != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	renderLogin(w, http.StatusOK, loginView{Next: next, Warning: s.cookieWarning(r)})
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.Auth.accounts() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginForm)
	if err := r.ParseForm(); err != nil {
		renderLogin(w, http.StatusBadRequest, loginView{Message: "Could not read the login form.", Next: "/"})
		return
	}
	name, password := r.PostForm.Get("name"), r.PostForm.Get("password")
	view := loginView{Name: name, Next: safeNext(r.PostForm.Get("next")), Warning: s.cookieWarning(r)}
	// The limits key on the name as the store compares it (case aside) and
	// on how often an admin unlocked it.
	unlocks, err := s.db.LoginUnlocks(r.Context(), name)
	if err != nil {
		s.log.Error("login", "err", err, "request_id", requestID(r))
		view.Message = "Login failed on the server; see its log."
		renderLogin(w, http.StatusInternalServerError, view)
		return
	}
	addrKey := clientAddress(r)
	nameKey := "name:" + strings.ToLower(truncate(name, 64)) + "#" + strconv.FormatInt(unlocks, 10)
	if !s.auth.logins.attempt(w, r, nameKey, addrKey) {
		secs := w.Header().Get("Retry-After")
		view.Message = "Too many login attempts. Try again in " + secs + " seconds, or ask an admin to unlock the account."
		s.log.Warn("login refused: too many attempts", "name", truncate(name, 64), "addr", addrKey, "request_id", requestID(r))
		renderLogin(w, http.StatusTooManyRequests, view)
		return
	}
	u, err := s.db.CheckPassword(r.Context(), name, password)
	if errors.Is(err, store.ErrBadCredentials) {
		s.log.Warn("login failed", "name", truncate(name, 64), "addr", addrKey, "request_id", requestID(r))
		view.Message = "Wrong user name or password."
		renderLogin(w, http.StatusUnauthorized, view)
		return
	}
	if err != nil {
		s.log.Error("login", "err", err, "request_id", requestID(r))
		view.Message = "Login failed on the server; see its log."
		renderLogin(w, http.StatusInternalServerError, view)
		return
	}

	// A fresh secret at every login: a session id planted before login
	// (session fixation) is never promoted.
	secret, expires, err := s.db.CreateSession(r.Context(), u.ID, s.cfg.SessionTTL)
	if err != nil {
		s.log.Error("login: create session", "err", err, "request_id", requestID(r))
		view.Message = "Login failed on the server; see its log."
		renderLogin(w, http.StatusInternalServerError, view)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: secret, Path: "/",
		Expires: expires, MaxAge: int(s.cfg.SessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(r),
	})
	s.log.Info("login", "name", u.Name, "role", u.Role, "request_id", requestID(r))
	http.Redirect(w, r, view.Next, http.StatusSeeOther)
}

// logout ends the session on the server (so a copied cookie stops working
// too) and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := s.db.DeleteSession(r.Context(), c.Value); err != nil {
			s.apiError(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(r)})
	if !s.cfg.Auth.accounts() {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) secureCookies(r *http.Request) bool { return r.TLS != nil || s.cfg.SecureCookies }

// safeNext keeps the after-login redirect on this server: only a local path
// ("/analyses/x?y"), never "//evil.example" or "https://evil.example", which
// would make the login page an open redirect.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Path == "/login" || u.Path == "/logout" {
		return "/"
	}
	return next
}

// truncate cuts s to at most n bytes, at a character boundary, so that
// what is logged or used as a key never ends in half a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// renderLogin draws web.LoginPage. It needs nothing of the request, so it
// renders with a background context; into a buffer, so a failure is a clean
// 500 rather than half a page.
func renderLogin(w http.ResponseWriter, code int, v loginView) {
	var buf bytes.Buffer
	if err := web.LoginPage(v).Render(context.Background(), &buf); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}
