package handlers

import (
	"regexp"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/assets"
	"github.com/deltascope/deltascope/store"
)

// The login page renders for a stranger and links its style sheet at the
// asset's checksum URL, which a stranger may load (the page is styled before
// anyone signs in) while every other asset still needs a login.
func TestLoginPageAndStyleSheet(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	page := f.do("GET", "/login", "", anonymous)
	body := page.Body.String()
	if page.Code != 200 || !strings.Contains(body, `<form method="post" action="/login">`) {
		t.Fatalf("login page: %d %.300s", page.Code, body)
	}
	m := regexp.MustCompile(`<link rel="stylesheet" href="([^"]+)">`).FindStringSubmatch(body)
	if m == nil || m[1] != assets.URL(assets.LoginCSS) || !strings.HasPrefix(m[1], assets.Prefix) {
		t.Fatalf("style sheet link %v, want %s", m, assets.URL(assets.LoginCSS))
	}
	css := f.do("GET", m[1], "", anonymous)
	if css.Code != 200 || !strings.HasPrefix(css.Header().Get("Content-Type"), "text/css") || !strings.Contains(css.Body.String(), ".login{") {
		t.Errorf("style sheet for a stranger: %d %q %.80s", css.Code, css.Header().Get("Content-Type"), css.Body.String())
	}
	if !strings.Contains(css.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("style sheet not cached as an asset: %q", css.Header().Get("Cache-Control"))
	}
	if rec := f.do("GET", assets.URL(assets.CommonJS), "", anonymous); rec.Code == 200 {
		t.Errorf("another asset answered a stranger: %d", rec.Code)
	}
	if rec := f.do("GET", assets.URL(assets.CommonJS), "", store.RoleViewer); rec.Code != 200 {
		t.Errorf("an asset for a viewer: %d", rec.Code)
	}
	if rec := f.do("GET", "/login.css", "", anonymous); rec.Code == 200 {
		t.Errorf("the old unversioned /login.css still answers 200")
	}
}
