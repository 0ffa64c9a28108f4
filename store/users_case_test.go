package store

import (
	"context"
	"errors"
	"testing"
)

// TestUserNamesIgnoreCase: an account cannot be created beside one whose name
// differs only in case (ADMIN beside admin, which the review could do), and
// every lookup by name finds the account whatever the case it is typed in.
func TestUserNamesIgnoreCase(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	admin, err := db.CreateUser(ctx, "admin", RoleAdmin, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateUser(ctx, "bob", RoleViewer, "battery staple"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ADMIN", "Admin", "admin"} {
		if _, err := db.CreateUser(ctx, name, RoleAdmin, "another one"); !errors.Is(err, ErrConflict) {
			t.Errorf("CreateUser(%q) beside admin: %v, want a conflict", name, err)
		}
	}
	if n, _ := db.CountUsers(ctx); n != 2 {
		t.Fatalf("%d accounts, want 2", n)
	}
	if u, err := db.GetUser(ctx, "ADMIN"); err != nil || u.ID != admin.ID || u.Name != "admin" {
		t.Errorf("GetUser(ADMIN) = %+v, %v; want the admin account, spelled as created", u, err)
	}
	if u, err := db.CheckPassword(ctx, "Admin", "correct horse"); err != nil || u.ID != admin.ID {
		t.Errorf("CheckPassword(Admin) = %+v, %v", u, err)
	}
	if _, err := db.SetUserRole(ctx, "BOB", RoleEditor); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.GetUser(ctx, "bob"); u.Role != RoleEditor {
		t.Errorf("SetUserRole(BOB) left bob %s", u.Role)
	}
	if err := db.SetUserPassword(ctx, "BoB", "new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckPassword(ctx, "bob", "new password"); err != nil {
		t.Errorf("password set as BoB does not log bob in: %v", err)
	}
	// Tokens are made, listed and revoked for the account in any case too.
	_, tok, err := db.CreateAPIToken(ctx, "BOB", "ci")
	if err != nil {
		t.Fatalf("CreateAPIToken(BOB): %v", err)
	}
	if ts, err := db.ListAPITokens(ctx, "bob"); err != nil || len(ts) != 1 || ts[0].ID != tok.ID {
		t.Errorf("ListAPITokens(bob) = %+v, %v; want the token made as BOB", ts, err)
	}
	if err := db.RevokeAPIToken(ctx, "Bob", tok.ID); err != nil {
		t.Errorf("RevokeAPIToken(Bob): %v", err)
	}
	if err := db.DeleteUser(ctx, "ADMIN"); !errors.Is(err, ErrConflict) {
		t.Errorf("deleting the last admin as ADMIN: %v, want a conflict", err)
	}
	if err := db.DeleteUser(ctx, "BOB"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetUser(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob after DeleteUser(BOB): %v", err)
	}
}

// TestLegacyCaseTwins: a store made before the rule may hold two accounts that
// differ only in case; each exact spelling still means its own account, and no
// change through one touches the other.
func TestLegacyCaseTwins(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	lower, err := db.CreateUser(ctx, "carol", RoleViewer, "carol's password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(ctx,
		`INSERT INTO users (name, role, password_hash, created_at) VALUES ('CAROL', 'admin', '', 0)`); err != nil {
		t.Fatal(err)
	}
	upper, err := db.GetUser(ctx, "CAROL")
	if err != nil || upper.ID == lower.ID || upper.Role != RoleAdmin {
		t.Fatalf("GetUser(CAROL) = %+v, %v; want the legacy twin", upper, err)
	}
	if u, err := db.GetUser(ctx, "carol"); err != nil || u.ID != lower.ID {
		t.Fatalf("GetUser(carol) = %+v, %v", u, err)
	}
	if err := db.SetUserPassword(ctx, "CAROL", "twin password"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CheckPassword(ctx, "carol", "carol's password"); err != nil {
		t.Errorf("changing CAROL's password changed carol's: %v", err)
	}
}
