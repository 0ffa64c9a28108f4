package handlers

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/store"
)

// The admin page does what `user token` and `user unlock` do: lists each
// account's tokens with last use and expiry, creates one (its secret shown
// once, in the answer), revokes one or all, and unlocks logins. Only admins
// see it.
func TestAdminTokensPage(t *testing.T) {
	f := newAuthFixture(t, Config{Auth: AuthAccounts})
	ctx := context.Background()
	bearer := func(secret string) int {
		req := f.request("GET", "/api/me", "", anonymous)
		req.Header.Set("Authorization", "Bearer "+secret)
		return f.serve(req).Code
	}
	for _, who := range []as{store.RoleEditor, store.RoleViewer} {
		if rec := f.do("GET", "/admin/users", "", who); rec.Code != http.StatusForbidden {
			t.Errorf("the admin page for a %s: %d", who, rec.Code)
		}
		if rec := f.do("POST", "/admin/users/ed/tokens/revoke", "", who); rec.Code != http.StatusForbidden {
			t.Errorf("revoke all by a %s: %d", who, rec.Code)
		}
	}
	form := func(target, body string) *http.Request {
		req := f.request("POST", target, "", store.RoleAdmin)
		req.Body = http.NoBody
		if body != "" {
			req = f.request("POST", target, body, store.RoleAdmin)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return req
	}
	rec := f.serve(form("/admin/users/ed/tokens", "label=ci&days=30"))
	secret := regexp.MustCompile(`data-testid="new-token">(dst_[^<]+)<`).FindStringSubmatch(rec.Body.String())
	if rec.Code != http.StatusCreated || secret == nil {
		t.Fatalf("new token: %d %s", rec.Code, rec.Body)
	}
	if code := bearer(secret[1]); code != 200 {
		t.Fatalf("the new token: %d", code)
	}
	page := f.do("GET", "/admin/users", "", store.RoleAdmin).Body.String()
	if strings.Contains(page, secret[1]) || !strings.Contains(page, `data-user="ed"`) || !strings.Contains(page, ">ci<") || strings.Count(page, `data-state="live"`) != 1 {
		t.Fatalf("the admin page (it must list the token, never its secret): %s", page)
	}
	toks, _ := f.db.ListAPITokens(ctx, "ed")
	if len(toks) != 1 || toks[0].ExpiresAt == nil || toks[0].LastUsedAt == nil {
		t.Fatalf("stored token: %+v", toks)
	}
	if rec := f.serve(form("/admin/users/ed/tokens/"+itoa(int(toks[0].ID))+"/revoke", "")); rec.Code != http.StatusSeeOther {
		t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
	}
	if code := bearer(secret[1]); code != 401 {
		t.Errorf("a revoked token: %d", code)
	}
	if page := f.do("GET", "/admin/users", "", store.RoleAdmin).Body.String(); !strings.Contains(page, `data-state="revoked"`) {
		t.Errorf("the page does not show the revocation")
	}
	second, _, _ := f.db.CreateAPITokenTTL(ctx, "ed", "", store.DefaultTokenTTL)
	if rec := f.serve(form("/admin/users/ed/tokens/revoke", "")); rec.Code != http.StatusSeeOther || bearer(second) != 401 {
		t.Errorf("revoke all: %d, token %d", rec.Code, bearer(second))
	}
	if rec := f.serve(form("/admin/users/ed/unlock", "")); rec.Code != http.StatusSeeOther {
		t.Errorf("unlock: %d", rec.Code)
	}
	if n, _ := f.db.LoginUnlocks(ctx, "ed"); n != 1 {
		t.Errorf("unlock count %d", n)
	}
	if rec := f.serve(form("/admin/users/nobody/unlock", "")); rec.Code != http.StatusNotFound {
		t.Errorf("unlock of an unknown user: %d", rec.Code)
	}
}
