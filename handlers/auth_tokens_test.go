package handlers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deltascope/deltascope/store"
)

// An admin manages an account's tokens through the API: creates one with an
// expiry, sees it listed with its last use, revokes it or all of them; a
// password change and the expiry end a token too. Each ended token gets 401.
func TestTokenAdminAPI(t *testing.T) {
	s, tok := tokenServer(t, nil, "root", "ed")
	if _, err := s.db.SetUserRole(t.Context(), "root", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	admin := tusClient{s.URL, tok["root"]}
	works := func(secret string) int {
		resp, _ := tusClient{s.URL, secret}.req(t, "GET", "/api/me", nil)
		return resp.StatusCode
	}
	create := func(body string) string {
		resp, out := admin.req(t, "POST", "/api/users/ed/tokens", strings.NewReader(body), "Content-Type", "application/json")
		var got struct {
			Token string         `json:"token"`
			Info  store.APIToken `json:"info"`
		}
		if resp.StatusCode != 201 || json.Unmarshal([]byte(out), &got) != nil || !strings.HasPrefix(got.Token, store.TokenPrefix) {
			t.Fatalf("create token: %d %s", resp.StatusCode, out)
		}
		return got.Token
	}
	a := create(`{"label": "ci", "days": 1}`)
	if code := works(a); code != 200 {
		t.Fatalf("new token: %d", code)
	}
	resp, out := admin.req(t, "GET", "/api/users/ed/tokens", nil)
	var list struct{ Tokens []store.APIToken }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(out), &list) != nil || len(list.Tokens) != 2 {
		t.Fatalf("list: %d %s", resp.StatusCode, out)
	}
	if got := list.Tokens[0]; got.Name != "ci" || got.LastUsedAt == nil || got.ExpiresAt == nil || got.ExpiresAt.Sub(got.CreatedAt) != 24*time.Hour {
		t.Errorf("listed token: %+v", got)
	}
	// An editor cannot manage anyone's tokens.
	if resp, _ := (tusClient{s.URL, tok["ed"]}).req(t, "GET", "/api/users/ed/tokens", nil); resp.StatusCode != 403 {
		t.Errorf("an editor lists tokens: %d", resp.StatusCode)
	}
	// Revoke one.
	if resp, out := admin.req(t, "DELETE", "/api/users/ed/tokens/"+itoa(int(list.Tokens[0].ID)), nil); resp.StatusCode != 204 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, out)
	}
	if code := works(a); code != 401 {
		t.Errorf("a revoked token: %d, want 401", code)
	}
	// Revoke all.
	b := create(`{}`)
	if resp, out := admin.req(t, "DELETE", "/api/users/ed/tokens", nil); resp.StatusCode != 200 || !strings.Contains(out, `"revoked":2`) {
		t.Errorf("revoke all: %d %s", resp.StatusCode, out)
	}
	if works(b) != 401 || works(tok["ed"]) != 401 {
		t.Error("tokens still work after revoke all")
	}
	// A password change ends tokens.
	c := create(`{"never": true}`)
	if resp, out := admin.req(t, "PATCH", "/api/users/ed", strings.NewReader(`{"password": "a brand new password"}`), "Content-Type", "application/json"); resp.StatusCode != 200 {
		t.Fatalf("password change: %d %s", resp.StatusCode, out)
	}
	if code := works(c); code != 401 {
		t.Errorf("a token after a password change: %d, want 401", code)
	}
	// The expiry ends a token.
	d := create(`{"days": 2}`)
	later := time.Now().Add(3 * 24 * time.Hour)
	s.db.Now = func() time.Time { return later }
	if code := works(d); code != 401 {
		t.Errorf("a token past its expiry: %d, want 401", code)
	}
}
