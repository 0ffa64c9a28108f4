package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/deltascope/deltascope/store"
)

// AuthMode says how the server decides who a request comes from.
type AuthMode string

const (
	// AuthNone treats every request as an admin's. Only safe on loopback, which
	// `serve` enforces.
	AuthNone AuthMode = "none"
	// AuthAccounts requires a login session (browser) or a personal API token
	// (scripts) on everything but the login page and the health checks.
	AuthAccounts AuthMode = "accounts"
)

// ParseAuthMode accepts none or accounts.
func ParseAuthMode(s string) (AuthMode, error) {
	switch m := AuthMode(s); m {
	case AuthNone, AuthAccounts:
		return m, nil
	}
	return "", fmt.Errorf("auth mode %q: must be none or accounts", s)
}

func (m AuthMode) accounts() bool { return m == AuthAccounts }

// defaultSessionTTL is how long a login lasts unless Config.SessionTTL says.
const defaultSessionTTL = 7 * 24 * time.Hour

// sessionCookie holds the login session's secret.
const sessionCookie = "deltascope_session"

// authState is the auth feature's per-server state.
type authState struct {
	csrf   *http.CrossOriginProtection
	logins *loginLimiter
}

func newAuthState(cfg *Config, log *slog.Logger) *authState {
	if cfg.Auth == "" {
		cfg.Auth = AuthNone
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = defaultSessionTTL
	}
	a := &authState{csrf: http.NewCrossOriginProtection(), logins: newLoginLimiter()}
	for _, o := range cfg.TrustedOrigins {
		// serve checks origins with CheckTrustedOrigin first; here a bad one can
		// only be logged, and trusting nothing is the safe outcome.
		if err := a.csrf.AddTrustedOrigin(o); err != nil {
			log.Error("ignoring trusted origin", "origin", o, "err", err)
		}
	}
	a.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forbidden(w, "cross-origin request refused: state-changing requests must come from this server's own pages or carry an API token")
	}))
	return a
}

// CheckTrustedOrigin reports whether origin is acceptable as Config.TrustedOrigins
// entry ("scheme://host[:port]", nothing else).
func CheckTrustedOrigin(origin string) error {
	return http.NewCrossOriginProtection().AddTrustedOrigin(origin)
}

// principal is who a request acts as.
type principal struct {
	// User is the account; nil when auth is none.
	User *store.User
	Role store.Role
	// Via is how the request was authenticated: none, session or token.
	Via string
}

type principalKey struct{}

// currentPrincipal returns who the request acts as, or nil for an anonymous
// request in accounts mode.
func currentPrincipal(r *http.Request) *principal {
	p, _ := r.Context().Value(principalKey{}).(*principal)
	return p
}

// currentUser is the account a request acts as: nil when anonymous or when
// auth is none. Handlers that record an author (comments, recipes, reviews)
// store its ID.
func currentUser(r *http.Request) *store.User {
	if p := currentPrincipal(r); p != nil {
		return p.User
	}
	return nil
}

// authenticate finds who the request comes from and records it in the
// context; it refuses nothing except a malformed or unknown API token (a script
// that sends a bad token should hear so, not be treated as anonymous). Each
// route's declared access (routes.go) then decides.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.Auth.accounts() {
			next.ServeHTTP(w, withPrincipal(r, &principal{Role: store.RoleAdmin, Via: "none"}))
			return
		}
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, token, _ := strings.Cut(h, " ")
			if !strings.EqualFold(scheme, "Bearer") || token == "" {
				s.unauthorized(w, "the Authorization header must be \"Bearer <token>\"")
				return
			}
			u, err := s.db.TokenUser(r.Context(), strings.TrimSpace(token))
			if errors.Is(err, store.ErrNotFound) {
				s.unauthorized(w, "unknown, revoked or expired API token")
				return
			}
			if err != nil {
				s.apiError(w, r, err)
				return
			}
			next.ServeHTTP(w, withPrincipal(r, &principal{User: u, Role: u.Role, Via: "token"}))
			return
		}
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			u, err := s.db.SessionUser(r.Context(), c.Value)
			switch {
			case err == nil:
				r = withPrincipal(r, &principal{User: u, Role: u.Role, Via: "session"})
			case !errors.Is(err, store.ErrNotFound):
				s.apiError(w, r, err)
				return
			}
			// An expired or unknown session is simply anonymous: the browser is
			// sent to the login page, which replaces the cookie.
		}
		next.ServeHTTP(w, r)
	})
}

func withPrincipal(r *http.Request, p *principal) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
}

func isSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// allow answers the request with a refusal and returns false unless its
// principal has at least role min.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, min store.Role) bool {
	p := currentPrincipal(r)
	if p == nil {
		if r.Header.Get("HX-Request") != "" {
			// An htmx fragment request: a redirect would swap the login page
			// into the fragment, so ask htmx to navigate the whole page instead.
			w.Header().Set("HX-Redirect", "/login")
		}
		if wantsPage(r) {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		} else {
			s.unauthorized(w, "sign in first: log in at /login or send \"Authorization: Bearer <token>\"")
		}
		return false
	}
	if !p.Role.AtLeast(min) {
		who := "you are"
		if p.User != nil {
			who = p.User.Name + " is"
		}
		forbidden(w, fmt.Sprintf("this needs the %s role; %s a %s", min, who, p.Role))
		return false
	}
	return true
}

// wantsPage tells a browser navigating to a page (redirect it to log in) from
// an API client (tell it 401).
func wantsPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
		return false
	}
	// Browsers navigating to a page always accept text/html; curl and
	// monitoring scripts (say, polling /metrics) do not ask for it.
	return r.Header.Get("Authorization") == "" && r.Header.Get("HX-Request") == "" &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

func (s *Server) unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="deltascope"`)
	writeJSON(w, http.StatusUnauthorized, errorBody{msg})
}
