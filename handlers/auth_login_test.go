package handlers

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deltascope/deltascope/store"
)

// loginRequest is the login form as a browser on this server posts it.
func loginRequest(name, password, next, remote string) *http.Request {
	form := url.Values{"name": {name}, "password": {password}, "next": {next}}
	req := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if remote != "" {
		req.RemoteAddr = remote
	}
	return req
}

func sessionFrom(t *testing.T, rec *httptest.ResponseRecorder) *http.Cookie {
	t.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", sessionCookie, rec.Header()["Set-Cookie"])
	return nil
}

func TestLoginFlowAndCookieFlags(t *testing.T) {
	tests := []struct {
		name       string
		secureFlag bool // --secure-cookies
		tls        bool
		wantSecure bool
	}{
		{"plain http", false, false, false},
		{"behind a TLS proxy with --secure-cookies", true, false, true},
		{"direct TLS", false, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newAuthFixture(t, Config{Auth: AuthAccounts, SecureCookies: tc.secureFlag, SessionTTL: time.Hour})
			req := loginRequest("ed", testPassword, "/analyses/abc?view=heat", "")
			if tc.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec := f.serve(req)
			if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/analyses/abc?view=heat" {
				t.Fatalf("login: %d Location %q", rec.Code, rec.Header().Get("Location"))
			}
			c := sessionFrom(t, rec)
			raw := rec.Header().Get("Set-Cookie")
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != tc.wantSecure {
				t.Fatalf("cookie flags: %q (secure want %v)", raw, tc.wantSecure)
			}
			if c.MaxAge != 3600 || len(c.Value) < 40 {
				t.Fatalf("cookie lifetime or secret: %q", raw)
			}

			// The cookie signs the user in.
			api := httptest.NewRequest("GET", "/api/me", nil)
			api.AddCookie(c)
			if rec := f.serve(api); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"ed"`) {
				t.Fatalf("/api/me with the cookie: %d %s", rec.Code, rec.Body)
			}

			// Logout ends the session on the server, not only in the browser.
			out := httptest.NewRequest("POST", "/logout", nil)
			out.AddCookie(c)
			rec = f.serve(out)
			if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/login" {
				t.Fatalf("logout: %d %q", rec.Code, rec.Header().Get("Location"))
			}
			if cleared := sessionFrom(t, rec); cleared.MaxAge >= 0 || cleared.Value != "" {
				t.Fatalf("logout does not clear the cookie: %q", rec.Header().Get("Set-Cookie"))
			}
			again := httptest.NewRequest("GET", "/api/me", nil)
			again.AddCookie(c)
			if rec := f.serve(again); rec.Code != http.StatusUnauthorized {
				t.Fatalf("old cookie after logout: %d, want 401", rec.Code)
			}
		})
	}
}

func TestLoginRefusals(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	tests := []struct {
		name, user, password string
		want                 int
		message              string
	}{
		{"wrong password", "ed", "not the password", 401, "Wrong user name or password."},
		{"unknown user", "mallory", testPassword, 401, "Wrong user name or password."},
		{"empty form", "", "", 401, "Wrong user name or password."},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.serve(loginRequest(tc.user, tc.password, "/", fmt.Sprintf("192.0.2.%d:1234", i+1)))
			if rec.Code != tc.want || !strings.Contains(rec.Body.String(), tc.message) {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if len(rec.Result().Cookies()) != 0 {
				t.Fatal("a failed login set a cookie")
			}
		})
	}
	// The name typed is shown back, escaped.
	rec := f.serve(loginRequest(`<b>x</b>`, "wrong password", "/", "192.0.2.9:1"))
	if strings.Contains(rec.Body.String(), "<b>x</b>") || !strings.Contains(rec.Body.String(), "&lt;b&gt;") {
		t.Fatal("the login page does not escape the user name")
	}
}

func TestSessionExpiry(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts, SessionTTL: time.Hour})
	rec := f.serve(loginRequest("vi", testPassword, "/", ""))
	c := sessionFrom(t, rec)
	base := time.Now()
	for _, tc := range []struct {
		after time.Duration
		want  int
	}{{59 * time.Minute, 200}, {61 * time.Minute, 401}} {
		f.db.Now = func() time.Time { return base.Add(tc.after) }
		req := httptest.NewRequest("GET", "/api/analyses", nil)
		req.AddCookie(c)
		if rec := f.serve(req); rec.Code != tc.want {
			t.Fatalf("after %v: %d, want %d", tc.after, rec.Code, tc.want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	tests := map[string]string{
		"":                         "/",
		"/analyses/x?a=1&b=2#cell": "/analyses/x?a=1&b=2#cell",
		"//evil.example/":          "/",
		"https://evil.example/":    "/",
		"/\\evil.example":          "/",
		"javascript:alert(1)":      "/",
		"/login?next=/x":           "/",
		"/logout":                  "/",
		"relative":                 "/",
		"/a\r\nSet-Cookie: x=y":    "/",
	}
	for in, want := range tests {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

// The login limits of issue 14: per (name, address) with an hourly backoff,
// per address, never per name alone (nobody can lock an account out from an
// address of their own), and an admin's unlock.
func TestLoginRateLimit(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	const a, b = "198.51.100.1:5000", "203.0.113.7:1"
	allowed := loginNameLimits[0].n
	for i := range allowed {
		if rec := f.serve(loginRequest("ed", "guess "+strconv.Itoa(i), "/", a)); rec.Code != 401 {
			t.Fatalf("guess %d: %d", i+1, rec.Code)
		}
	}
	rec := f.serve(loginRequest("ed", testPassword, "/", a))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "60" || !strings.Contains(rec.Body.String(), "ask an admin to unlock") {
		t.Fatalf("after %d guesses, even the right password: %d Retry-After %q, want 429 and 60", allowed, rec.Code, rec.Header().Get("Retry-After"))
	}
	// The guesses from a lock ed out nowhere else...
	if rec := f.serve(loginRequest("ed", testPassword, "/", b)); rec.Code != http.StatusSeeOther {
		t.Fatalf("ed from another address: %d, want 303", rec.Code)
	}
	// ...and the refused attempts did not use up a's allowance for other names.
	if rec := f.serve(loginRequest("vi", testPassword, "/", a)); rec.Code != http.StatusSeeOther {
		t.Fatalf("another name from the same address: %d, want 303", rec.Code)
	}
	// One address trying many names is stopped by the address limit.
	code := 0
	for i := range loginAddrLimits[0].n + 1 {
		code = f.serve(loginRequest("name"+strconv.Itoa(i), "x", "/", "192.0.2.9:1")).Code
	}
	if code != http.StatusTooManyRequests {
		t.Errorf("attempt %d from one address: %d, want 429", loginAddrLimits[0].n+1, code)
	}
	// An admin unlocks ed: the right password works from a again.
	if rec := f.do("POST", "/api/users/ed/unlock", "", store.RoleEditor); rec.Code != http.StatusForbidden {
		t.Errorf("an editor unlocks: %d, want 403", rec.Code)
	}
	if rec := f.do("POST", "/api/users/ed/unlock", "", store.RoleAdmin); rec.Code != 200 {
		t.Fatalf("unlock: %d %s", rec.Code, rec.Body)
	}
	if rec := f.serve(loginRequest("ed", testPassword, "/", a)); rec.Code != http.StatusSeeOther {
		t.Fatalf("ed after the unlock: %d, want 303", rec.Code)
	}
	if rec := f.do("POST", "/api/users/nobody/unlock", "", store.RoleAdmin); rec.Code != 404 {
		t.Errorf("unlock of an unknown user: %d", rec.Code)
	}
}

// The race of issue 14: 60 concurrent wrong guesses all got 401 (the count
// came after bcrypt). Now each attempt is counted before the password is
// checked: at most the allowance reaches bcrypt, the rest get 429, and the
// server answers another client meanwhile.
func TestLoginConcurrentGuesses(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	// ed's password at the production cost: bcrypt takes long enough for
	// concurrent guesses to overlap, as they did in the review.
	if err := f.db.SetPasswordCost(10); err != nil {
		t.Fatal(err)
	}
	if err := f.db.SetUserPassword(context.Background(), "ed", testPassword); err != nil {
		t.Fatal(err)
	}
	const guesses = 60
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range guesses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			form := url.Values{"name": {"ed"}, "password": {"guess " + strconv.Itoa(i)}}
			resp, err := quickClient.PostForm(f.url+"/login", form)
			code := 0
			if err == nil {
				resp.Body.Close()
				code = resp.StatusCode
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		}()
	}
	close(start)
	if resp, err := otherClient().Get(f.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz during the guesses: %v %v", resp, err)
	}
	wg.Wait()
	t.Logf("%d concurrent wrong guesses: %v", guesses, codes)
	if codes[401] > loginNameLimits[0].n || codes[429] != guesses-codes[401] {
		t.Errorf("%d concurrent guesses: %v, want at most %d × 401 and the rest 429", guesses, codes, loginNameLimits[0].n)
	}
}

func TestClientAddress(t *testing.T) {
	tests := map[string]string{
		"192.0.2.1:80":              "addr:192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:80": "addr:2001:db8:1:2::",
		"[2001:db8:1:2:ff::1]:9":    "addr:2001:db8:1:2::",
		"not-an-address":            "addr:not-an-address",
	}
	for in, want := range tests {
		req := httptest.NewRequest("GET", "/", nil)
		req.RemoteAddr = in
		req.Header.Set("X-Forwarded-For", "10.9.9.9")
		if got := clientAddress(req); got != want {
			t.Errorf("clientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBearerTokens(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	ctx := context.Background()
	edToken, _, err := f.db.CreateAPIToken(ctx, "ed", "ci")
	if err != nil {
		t.Fatal(err)
	}
	viToken, viTok, _ := f.db.CreateAPIToken(ctx, "vi", "")
	tests := []struct {
		name, header, method, target, body string
		want                               int
	}{
		{"editor token reads", "Bearer " + edToken, "GET", "/api/analyses", "", 200},
		{"editor token writes", "Bearer " + edToken, "POST", "/api/uploads", `{"side":"vla","path":"a.safetensors","size":4}`, 201},
		{"viewer token cannot write", "Bearer " + viToken, "POST", "/api/uploads", `{"side":"vla","path":"a.safetensors","size":4}`, 403},
		{"viewer token is not admin", "Bearer " + viToken, "GET", "/api/users", "", 403},
		{"lower-case scheme", "bearer " + edToken, "GET", "/api/analyses", "", 200},
		{"unknown token", "Bearer dst_nope", "GET", "/api/analyses", "", 401},
		{"basic auth", "Basic cm9vdDpwdw==", "GET", "/api/analyses", "", 401},
		{"empty bearer", "Bearer ", "GET", "/api/analyses", "", 401},
		{"a token on a page gets 401, not a redirect", "Bearer dst_nope", "GET", "/", "", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(tc.method, tc.target, tc.body, anonymous)
			req.Header.Set("Authorization", tc.header)
			rec := f.serve(req)
			if rec.Code != tc.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	if err := f.db.RevokeAPIToken(ctx, "vi", viTok.ID); err != nil {
		t.Fatal(err)
	}
	req := f.request("GET", "/api/analyses", "", anonymous)
	req.Header.Set("Authorization", "Bearer "+viToken)
	if rec := f.serve(req); rec.Code != 401 {
		t.Fatalf("revoked token: %d, want 401", rec.Code)
	}
	// A role change applies to tokens at once.
	if _, err := f.db.SetUserRole(ctx, "ed", store.RoleViewer); err != nil {
		t.Fatal(err)
	}
	req = f.request("POST", "/api/uploads", `{"side":"vla","path":"b.safetensors","size":4}`, anonymous)
	req.Header.Set("Authorization", "Bearer "+edToken)
	if rec := f.serve(req); rec.Code != 403 {
		t.Fatalf("demoted editor's token writes: %d, want 403", rec.Code)
	}
}
