package handlers

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/deltascope/deltascope/assets"
	"github.com/deltascope/deltascope/store"
)

// fastPasswords lowers db's bcrypt cost so that tests create users and log
// in quickly; no other database is touched.
func fastPasswords(tb testing.TB, db *store.DB) {
	tb.Helper()
	if err := db.SetPasswordCost(bcrypt.MinCost); err != nil {
		tb.Fatal(err)
	}
}

// authFixture is a live server with one user of each role and a login session
// for each. Most tests call its routes in process (handler); a browser or a
// crowd of concurrent clients uses its listener (url).
type authFixture struct {
	srv     *Server
	handler http.Handler
	url     string
	db      *store.DB
	// sessions maps a role to the session secret of a user with that role.
	sessions map[store.Role]string
}

const testPassword = "a long enough password"

func newAuthFixture(t *testing.T, cfg Config) *authFixture {
	t.Helper()
	ctx := context.Background()
	// A live server with the test's auth settings.
	l := startLiveServer(t, testServerOptions{config: func(c *Config) {
		roots, uploads, log := c.Roots, c.UploadDir, c.Log
		*c = cfg
		c.Roots, c.UploadDir, c.Log = roots, uploads, log
	}})
	srv, db := l.srv, l.db
	f := &authFixture{srv: srv, handler: srv.Routes(), url: l.URL, db: db, sessions: map[store.Role]string{}}
	for _, u := range []struct {
		name string
		role store.Role
	}{{"root", store.RoleAdmin}, {"ed", store.RoleEditor}, {"vi", store.RoleViewer}} {
		user, err := db.CreateUser(ctx, u.name, u.role, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		secret, _, err := db.CreateSession(ctx, user.ID, srv.cfg.SessionTTL)
		if err != nil {
			t.Fatal(err)
		}
		f.sessions[u.role] = secret
	}
	return f
}

// as is who a test request comes from: "" anonymous, or a role.
type as = store.Role

const anonymous as = ""

// request builds a same-origin request the way a browser on the dashboard
// would send it.
func (f *authFixture) request(method, target, body string, who as) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if !strings.HasPrefix(target, "/api/") {
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	}
	if who != anonymous {
		secret := f.sessions[who]
		if strings.HasPrefix(target, "/logout") {
			secret = f.freshSession(who) // logout ends the session it is sent with
		}
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: secret})
	}
	return req
}

// freshSession logs a user of role who in once more.
func (f *authFixture) freshSession(who as) string {
	ctx := context.Background()
	u, err := f.db.GetUser(ctx, map[as]string{store.RoleAdmin: "root", store.RoleEditor: "ed", store.RoleViewer: "vi"}[who])
	if err != nil {
		panic(err)
	}
	secret, _, err := f.db.CreateSession(ctx, u.ID, f.srv.cfg.SessionTTL)
	if err != nil {
		panic(err)
	}
	return secret
}

func (f *authFixture) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func (f *authFixture) do(method, target, body string, who as) *httptest.ResponseRecorder {
	return f.serve(f.request(method, target, body, who))
}

// route is one (method, pattern) of the route table.
type route struct{ method, pattern string }

// allRoutes lists the server's route table as registered, so routes added
// later are covered by the scenario tests without editing them.
func allRoutes(t *testing.T, h http.Handler) []route {
	t.Helper()
	var out []route
	err := chi.Walk(h.(chi.Routes), func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		out = append(out, route{method, pattern})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("only %d routes found; the walk is broken", len(out))
	}
	return out
}

var routeParam = regexp.MustCompile(`\{[^}]*\}|\*$`)

// concretePath fills a pattern's parameters with a value no row has.
func concretePath(pattern string) string {
	return routeParam.ReplaceAllString(pattern, "zz-none")
}

// wantRole is the access policy as the issue states it, written independently
// of the route table: "" means public.
func wantRole(method, path string) store.Role {
	switch {
	case map[string]bool{"/login": true, "/logout": true, "/healthz": true, "/readyz": true, assets.URL(assets.LoginCSS): true}[path]:
		return ""
	case strings.HasPrefix(path, "/api/users"), strings.HasPrefix(path, "/admin/"):
		return store.RoleAdmin
	case method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions:
		return store.RoleViewer
	case method == http.MethodPost && matchSegments("/api/analyses/*/resolve", path):
		return store.RoleViewer
	case method == http.MethodPost && matchSegments("/api/analyses/*/export", path):
		return store.RoleViewer // a download of an unsaved recipe: it stores nothing
	case method == http.MethodPost && matchSegments("/api/analyses/*/comments", path),
		(method == http.MethodPatch || method == http.MethodDelete) && matchSegments("/api/comments/*", path):
		return store.RoleViewer // viewers comment; the handler decides whose comment it is
	}
	return store.RoleEditor
}

// deniedByAuth reports whether the response is an authentication or role
// refusal (as opposed to the handler's own 403 for, say, a path outside the
// roots, or a 404 for the made-up id).
func deniedByAuth(rec *httptest.ResponseRecorder) bool {
	switch rec.Code {
	case http.StatusUnauthorized:
		return rec.Header().Get("WWW-Authenticate") != ""
	case http.StatusForbidden:
		return strings.Contains(rec.Body.String(), "this needs the")
	case http.StatusSeeOther:
		return strings.HasPrefix(rec.Header().Get("Location"), "/login?next=")
	}
	return false
}

var roles = []as{anonymous, store.RoleViewer, store.RoleEditor, store.RoleAdmin}

func roleName(r as) string {
	if r == anonymous {
		return "anonymous"
	}
	return string(r)
}

// TestEveryRouteUnderEveryRole walks the real route table and checks each
// route under each role in accounts mode: anonymous requests are sent to the
// login page (page reads) or get 401, a role below the route's gets 403 with
// the reason, and a sufficient role reaches the handler.
func TestEveryRouteUnderEveryRole(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	for _, rt := range allRoutes(t, f.handler) {
		path := concretePath(rt.pattern)
		min := wantRole(rt.method, path)
		for _, who := range roles {
			t.Run(rt.method+" "+rt.pattern+" as "+roleName(who), func(t *testing.T) {
				body := ""
				if !isSafeMethod(rt.method) {
					body = "{}"
				}
				rec := f.do(rt.method, path, body, who)
				switch {
				case min == "":
					if deniedByAuth(rec) {
						t.Fatalf("public route refused: %d %s", rec.Code, rec.Body)
					}
				case who == anonymous:
					page := (rt.method == http.MethodGet || rt.method == http.MethodHead) && !strings.HasPrefix(path, "/api/")
					if page {
						want := "/login?next=" + strings.ReplaceAll(path, "/", "%2F")
						if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != want {
							t.Fatalf("anonymous page read: %d Location %q, want 303 to %q", rec.Code, rec.Header().Get("Location"), want)
						}
					} else if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "Bearer") {
						t.Fatalf("anonymous: %d %s, want 401 with WWW-Authenticate", rec.Code, rec.Body)
					}
				case !who.AtLeast(min):
					if rec.Code != http.StatusForbidden || !deniedByAuth(rec) {
						t.Fatalf("%s on a %s route: %d %s, want 403", who, min, rec.Code, rec.Body)
					}
				default:
					if deniedByAuth(rec) {
						t.Fatalf("%s refused on a %s route: %d %s", who, min, rec.Code, rec.Body)
					}
				}
			})
		}
	}
}

// TestEveryRouteWithoutAuth: in auth=none mode every request acts as an admin,
// and nothing is refused for want of a login.
func TestEveryRouteWithoutAuth(t *testing.T) {
	f := newAuthFixture(t, Config{})
	for _, rt := range allRoutes(t, f.handler) {
		path := concretePath(rt.pattern)
		t.Run(rt.method+" "+rt.pattern, func(t *testing.T) {
			body := ""
			if !isSafeMethod(rt.method) {
				body = "{}"
			}
			rec := f.do(rt.method, path, body, anonymous)
			if deniedByAuth(rec) && !(path == "/logout" || path == "/login") {
				t.Fatalf("refused without auth: %d %s", rec.Code, rec.Body)
			}
		})
	}
	rec := f.do("GET", "/api/me", "", anonymous)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"role":"admin"`) || !strings.Contains(rec.Body.String(), `"auth":"none"`) {
		t.Fatalf("/api/me without auth: %d %s", rec.Code, rec.Body)
	}
}

// TestRoleScenarios pins exact statuses, successes included, for requests that
// can succeed with the fixture's data.
func TestRoleScenarios(t *testing.T) {
	type want [4]int // anonymous, viewer, editor, admin
	scenarios := []struct {
		name, method, target, body string
		want                       want
	}{
		{"health is public", "GET", "/healthz", "", want{200, 200, 200, 200}},
		{"readiness is public", "GET", "/readyz", "", want{200, 200, 200, 200}},
		{"metrics (a browser)", "GET", "/metrics", "", want{303, 200, 200, 200}},
		{"list analyses", "GET", "/api/analyses", "", want{401, 200, 200, 200}},
		{"who am I", "GET", "/api/me", "", want{401, 200, 200, 200}},
		{"queue an analysis", "POST", "/api/analyses", `{"base":[],"vla":[]}`, want{401, 403, 400, 400}},
		{"cancel an analysis", "POST", "/api/analyses/nope/cancel", "", want{401, 403, 404, 404}},
		{"preview", "POST", "/api/preview", `{}`, want{401, 403, 400, 400}},
		{"start an upload", "POST", "/api/uploads", `{"side":"base","path":"m.safetensors","size":8}`, want{401, 403, 201, 201}},
		{"list users", "GET", "/api/users", "", want{401, 403, 403, 200}},
		{"one user", "GET", "/api/users/vi", "", want{401, 403, 403, 200}},
		{"create a user", "POST", "/api/users", `{"name":"newcomer","role":"viewer","password":"long enough pw"}`, want{401, 403, 403, 201}},
		{"change a role", "PATCH", "/api/users/newcomer", `{"role":"editor"}`, want{401, 403, 403, 200}},
		{"delete a user", "DELETE", "/api/users/newcomer", "", want{401, 403, 403, 204}},
		{"login page", "GET", "/login", "", want{200, 303, 303, 303}},
		{"a page", "GET", "/analyses/nope", "", want{303, 404, 404, 404}},
		{"a page's form", "POST", "/analyses/nope/cancel", "", want{401, 403, 404, 404}},
	}
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	for i, who := range roles {
		for _, sc := range scenarios {
			t.Run(roleName(who)+" "+sc.name, func(t *testing.T) {
				rec := f.do(sc.method, sc.target, sc.body, who)
				if rec.Code != sc.want[i] {
					t.Fatalf("%s %s as %s: %d %s, want %d", sc.method, sc.target, roleName(who), rec.Code, rec.Body, sc.want[i])
				}
			})
		}
	}
}

// TestEveryRouteDeclaresAccess: the route table is the policy. Every route
// the router serves was added through the table with an access, and that
// access is the policy as the issue states it (wantRole, written apart from
// the table), so a route added with the wrong role, or added around the
// table, fails here before any request is made.
func TestEveryRouteDeclaresAccess(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	h, declared := f.srv.routes()
	routes := allRoutes(t, h)
	for _, rt := range routes {
		a, ok := declared[rt.method+" "+rt.pattern]
		if !ok {
			t.Errorf("%s %s is served but was not added through the route table with an access", rt.method, rt.pattern)
			continue
		}
		want := wantRole(rt.method, concretePath(rt.pattern))
		if got := map[bool]store.Role{true: "", false: a.min}[a.public]; got != want {
			t.Errorf("%s %s is %s, want %q", rt.method, rt.pattern, a, want)
		}
	}
	if len(declared) != len(routes) {
		t.Errorf("%d routes declared, %d served", len(declared), len(routes))
	}
}

// matchSegments matches a path against a pattern whose "*" segments match
// any one non-empty segment.
func matchSegments(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] != xs[i] && (ps[i] != "*" || xs[i] == "") {
			return false
		}
	}
	return true
}

func TestScriptsGet401NotRedirect(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "*/*")
	rec := f.serve(req)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("Content-Type"), "json") {
		t.Fatalf("curl-like GET /metrics: %d %s, want 401 JSON", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func TestHTMXGetsRedirectHeader(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	req := f.request("GET", "/analyses/x", "", anonymous)
	req.Header.Set("HX-Request", "true")
	rec := f.serve(req)
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("HX-Redirect") != "/login" {
		t.Fatalf("htmx request: %d HX-Redirect %q, want 401 and /login", rec.Code, rec.Header().Get("HX-Redirect"))
	}
}
