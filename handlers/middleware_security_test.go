package handlers

import (
	"strings"
	"testing"

	"github.com/deltascope/deltascope/assets"
	"github.com/deltascope/deltascope/store"
)

func TestSecurityHeadersEverywhere(t *testing.T) {
	for _, mode := range []AuthMode{AuthNone, AuthAccounts} {
		f := newAuthFixture(t, Config{Auth: mode})
		requests := []struct {
			name, method, target string
			who                  as
		}{
			{"login page", "GET", "/login", anonymous},
			{"login style sheet", "GET", assets.URL(assets.LoginCSS), anonymous},
			{"a page", "GET", "/", store.RoleViewer},
			{"a redirect to login", "GET", "/analyses/x", anonymous},
			{"API", "GET", "/api/analyses", store.RoleViewer},
			{"API 401", "GET", "/api/analyses", anonymous},
			{"API 404", "GET", "/api/nothing-here", store.RoleViewer},
			{"health", "GET", "/healthz", anonymous},
			{"unknown page", "GET", "/nothing-here", store.RoleViewer},
			{"CSRF refusal", "POST", "/api/uploads", store.RoleEditor},
		}
		for _, rq := range requests {
			t.Run(string(mode)+" "+rq.name, func(t *testing.T) {
				req := f.request(rq.method, rq.target, "", rq.who)
				if rq.name == "CSRF refusal" {
					req.Header.Set("Sec-Fetch-Site", "cross-site")
				}
				h := f.serve(req).Header()
				want := map[string]string{
					"Content-Security-Policy": contentSecurityPolicy,
					"X-Content-Type-Options":  "nosniff",
					"Referrer-Policy":         "same-origin",
					"X-Frame-Options":         "DENY",
				}
				for k, v := range want {
					if h.Get(k) != v {
						t.Errorf("%s: %q, want %q", k, h.Get(k), v)
					}
				}
				csp := h.Get("Content-Security-Policy")
				if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || !strings.Contains(csp, "frame-ancestors 'none'") {
					t.Errorf("weak CSP %q", csp)
				}
			})
		}
	}
}

// TestCrossOriginRequestsRefused: a page on another site cannot make a signed-in
// browser change anything (CSRF), in either auth mode; reads and same-origin
// writes pass, and so do scripts, which send no browser headers.
func TestCrossOriginRequestsRefused(t *testing.T) {
	upload := `{"side":"base","path":"x.safetensors","size":4}`
	tests := []struct {
		name    string
		method  string
		target  string
		headers map[string]string
		want    int
	}{
		{"cross-site POST", "POST", "/api/uploads", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"same-site but other origin", "POST", "/api/uploads", map[string]string{"Sec-Fetch-Site": "same-site"}, 403},
		{"foreign Origin, no fetch metadata", "POST", "/api/uploads", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site DELETE", "DELETE", "/api/uploads/x", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"cross-site PATCH", "PATCH", "/api/uploads/x", map[string]string{"Origin": "http://evil.example"}, 403},
		{"cross-site page form", "POST", "/analyses/x/cancel", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"login CSRF", "POST", "/login", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"logout CSRF", "POST", "/logout", map[string]string{"Origin": "https://evil.example"}, 403},
		{"trusted origin", "POST", "/api/uploads", map[string]string{"Origin": "https://proxy.lab.example"}, 201},
		{"same-origin POST", "POST", "/api/uploads", map[string]string{"Sec-Fetch-Site": "same-origin"}, 201},
		{"Origin matching Host", "POST", "/api/uploads", map[string]string{"Origin": "http://example.com"}, 201},
		{"script without browser headers", "POST", "/api/uploads", nil, 201},
		{"cross-site GET is a read", "GET", "/api/analyses", map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
	}
	for _, mode := range []AuthMode{AuthNone, AuthAccounts} {
		f := newAuthFixture(t, Config{Auth: mode, TrustedOrigins: []string{"https://proxy.lab.example"}})
		for _, tc := range tests {
			t.Run(string(mode)+" "+tc.name, func(t *testing.T) {
				body := ""
				if tc.method != "GET" {
					body = upload
				}
				req := f.request(tc.method, tc.target, body, store.RoleEditor)
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				rec := f.serve(req)
				if rec.Code != tc.want {
					t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tc.want)
				}
				if tc.want == 403 && !strings.Contains(rec.Body.String(), "cross-origin request refused") {
					t.Fatalf("refusal without its reason: %s", rec.Body)
				}
			})
		}
	}
	if err := CheckTrustedOrigin("https://ok.example"); err != nil {
		t.Fatal(err)
	}
	if err := CheckTrustedOrigin("https://bad.example/path"); err == nil {
		t.Fatal("an origin with a path was accepted")
	}
}
