package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Tokens expire (90 days by default), can be revoked one by one or all at
// once, and a password change revokes them all (issue 14: they never
// expired, could not all be revoked, and survived a password change).
func TestTokenLifecycle(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	if _, err := db.CreateUser(ctx, "ci", RoleEditor, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	dflt, tok, err := db.CreateAPITokenTTL(ctx, "ci", "nightly", DefaultTokenTTL)
	if err != nil || tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(now.Add(90*24*time.Hour)) {
		t.Fatalf("default token: %+v %v", tok, err)
	}
	forever, _, err := db.CreateAPITokenTTL(ctx, "CI", "", 0) // names compare case-insensitively
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenUser(ctx, dflt); err != nil {
		t.Fatalf("a fresh token: %v", err)
	}
	list, _ := db.ListAPITokens(ctx, "ci")
	if len(list) != 2 || list[1].LastUsedAt == nil || list[1].ExpiresAt == nil || list[0].ExpiresAt != nil {
		t.Errorf("listing: %+v", list)
	}
	now = now.Add(91 * 24 * time.Hour)
	if _, err := db.TokenUser(ctx, dflt); !errors.Is(err, ErrNotFound) {
		t.Errorf("a token past its 90 days: %v", err)
	}
	if _, err := db.TokenUser(ctx, forever); err != nil {
		t.Errorf("a token without expiry: %v", err)
	}
	// Revoke all.
	third, _, _ := db.CreateAPITokenTTL(ctx, "ci", "", time.Hour)
	if n, err := db.RevokeAllAPITokens(ctx, "ci"); err != nil || n != 3 {
		t.Errorf("revoke all: %d %v, want the 3 not yet revoked (expired ones included)", n, err)
	}
	for _, s := range []string{forever, third} {
		if _, err := db.TokenUser(ctx, s); !errors.Is(err, ErrNotFound) {
			t.Errorf("a token after revoke all: %v", err)
		}
	}
	if _, err := db.RevokeAllAPITokens(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke all of an unknown user: %v", err)
	}
	// A password change revokes them too.
	fresh, _, _ := db.CreateAPITokenTTL(ctx, "ci", "", DefaultTokenTTL)
	if err := db.SetUserPassword(ctx, "ci", "another long password"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenUser(ctx, fresh); !errors.Is(err, ErrNotFound) {
		t.Errorf("a token after a password change: %v", err)
	}
	if _, _, err := db.CreateAPITokenTTL(ctx, "ci", "", -time.Hour); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative lifetime: %v", err)
	}
}
