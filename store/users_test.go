package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestShippedPasswordCost(t *testing.T) {
	if DefaultPasswordCost < bcrypt.DefaultCost {
		t.Fatalf("DefaultPasswordCost is %d, below bcrypt's default %d", DefaultPasswordCost, bcrypt.DefaultCost)
	}
	db, err := openTest(t, t.TempDir(), SchemaVersion()) // not mustOpen: that lowers the cost
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.PasswordCost() != DefaultPasswordCost {
		t.Fatalf("a new DB hashes at cost %d, want %d", db.PasswordCost(), DefaultPasswordCost)
	}
}

// The cost is the DB's own: lowering it for one database (as tests do)
// changes no other, and bcrypt's bounds are enforced.
func TestSetPasswordCost(t *testing.T) {
	fast, other := mustOpen(t), mustOpen(t)
	if err := other.SetPasswordCost(bcrypt.MinCost + 1); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct {
		db   *DB
		want int
	}{{fast, bcrypt.MinCost}, {other, bcrypt.MinCost + 1}} {
		if _, err := c.db.CreateUser(ctx, "ann", RoleViewer, "correct horse"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.db.CheckPassword(ctx, "ann", "correct horse"); err != nil {
			t.Fatalf("cost %d: %v", c.want, err)
		}
		if _, err := c.db.CheckPassword(ctx, "nobody", "correct horse"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("unknown user: %v", err)
		}
		if c.db.PasswordCost() != c.want {
			t.Errorf("PasswordCost = %d, want %d", c.db.PasswordCost(), c.want)
		}
		if cost, _ := bcrypt.Cost(c.db.dummyHash()); cost != c.want {
			t.Errorf("dummy hash at cost %d, want %d", cost, c.want)
		}
	}
	for _, bad := range []int{bcrypt.MinCost - 1, bcrypt.MaxCost + 1} {
		if err := fast.SetPasswordCost(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetPasswordCost(%d) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRoleAtLeast(t *testing.T) {
	tests := []struct {
		role, min Role
		want      bool
	}{
		{RoleViewer, RoleViewer, true},
		{RoleViewer, RoleEditor, false},
		{RoleEditor, RoleViewer, true},
		{RoleEditor, RoleAdmin, false},
		{RoleAdmin, RoleEditor, true},
		{Role(""), RoleViewer, false},
		{Role("root"), RoleViewer, false},
	}
	for _, tc := range tests {
		t.Run(string(tc.role)+">="+string(tc.min), func(t *testing.T) {
			if got := tc.role.AtLeast(tc.min); got != tc.want {
				t.Fatalf("AtLeast = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := ParseRole("superuser"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ParseRole(superuser) = %v, want ErrInvalid", err)
	}
}

func TestHashPasswordRoundTrip(t *testing.T) {
	h, err := HashPassword("correct horse", bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if cost, _ := bcrypt.Cost([]byte(h)); cost != bcrypt.MinCost {
		t.Fatalf("cost %d, want %d", cost, bcrypt.MinCost)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse")) != nil {
		t.Fatal("hash does not verify its password")
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horsE")) == nil {
		t.Fatal("hash verifies a different password")
	}
	h2, _ := HashPassword("correct horse", bcrypt.MinCost)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"short", strings.Repeat("x", MaxPasswordLen+1)} {
		if _, err := HashPassword(bad, bcrypt.MinCost); !errors.Is(err, ErrInvalid) {
			t.Fatalf("HashPassword(%d bytes) = %v, want ErrInvalid", len(bad), err)
		}
	}
}

func TestCreateAndCheckUser(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	u, err := db.CreateUser(ctx, "ada", RoleEditor, "analytical engine")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == 0 || u.Role != RoleEditor || !u.HasPassword {
		t.Fatalf("created %+v", u)
	}
	if _, err := db.CreateUser(ctx, "ada", RoleViewer, "another password"); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v, want ErrConflict", err)
	}
	if _, err := db.CreateUser(ctx, "tokens-only", RoleViewer, ""); err != nil {
		t.Fatal(err)
	}
	var stored string
	db.reader.QueryRow(`SELECT password_hash FROM users WHERE name = 'ada'`).Scan(&stored)
	if !strings.HasPrefix(stored, "$2") || strings.Contains(stored, "analytical") {
		t.Fatalf("stored password column %q is not a bcrypt hash", stored)
	}

	checks := []struct {
		name, user, password string
		ok                   bool
	}{
		{"right", "ada", "analytical engine", true},
		{"wrong", "ada", "analytical enginE", false},
		{"unknown user", "bob", "analytical engine", false},
		{"no password set", "tokens-only", "", false},
		{"over long", "ada", strings.Repeat("a", 200), false},
	}
	for _, tc := range checks {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.CheckPassword(ctx, tc.user, tc.password)
			if tc.ok && (err != nil || got.Name != tc.user) {
				t.Fatalf("CheckPassword = %v, %v", got, err)
			}
			if !tc.ok && !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("CheckPassword = %v, %v; want ErrBadCredentials", got, err)
			}
		})
	}

	bad := []struct{ name, user string }{
		{"empty", ""},
		{"space", "a b"},
		{"html", "<script>"},
		{"too long", strings.Repeat("a", 65)},
	}
	for _, tc := range bad {
		t.Run("invalid name "+tc.name, func(t *testing.T) {
			if _, err := db.CreateUser(ctx, tc.user, RoleViewer, "long enough"); !errors.Is(err, ErrInvalid) {
				t.Fatalf("CreateUser(%q) = %v, want ErrInvalid", tc.user, err)
			}
		})
	}
}

func TestLastAdminIsKept(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	db.CreateUser(ctx, "root", RoleAdmin, "password1")
	if _, err := db.SetUserRole(ctx, "root", RoleEditor); !errors.Is(err, ErrConflict) {
		t.Fatalf("demoting the last admin: %v, want ErrConflict", err)
	}
	if err := db.DeleteUser(ctx, "root"); !errors.Is(err, ErrConflict) {
		t.Fatalf("deleting the last admin: %v, want ErrConflict", err)
	}
	db.CreateUser(ctx, "second", RoleViewer, "password2")
	if u, err := db.SetUserRole(ctx, "second", RoleAdmin); err != nil || u.Role != RoleAdmin {
		t.Fatalf("promote: %v, %v", u, err)
	}
	if _, err := db.SetUserRole(ctx, "root", RoleViewer); err != nil {
		t.Fatalf("demoting one of two admins: %v", err)
	}
	if err := db.DeleteUser(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting an unknown user: %v, want ErrNotFound", err)
	}
	users, _ := db.ListUsers(ctx)
	if len(users) != 2 || users[0].Name != "root" || users[0].Role != RoleViewer {
		t.Fatalf("users %+v", users)
	}
}

// manualClock lets a test move the database's time.
func manualClock(db *DB) *time.Time {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db.Now = func() time.Time { return now }
	return &now
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	now := manualClock(db)
	u, _ := db.CreateUser(ctx, "ada", RoleViewer, "password1")

	secret, expires, err := db.CreateSession(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) < 40 || !expires.Equal(now.Add(time.Hour)) {
		t.Fatalf("secret %q expires %v", secret, expires)
	}
	var stored string
	db.reader.QueryRow(`SELECT token_hash FROM sessions`).Scan(&stored)
	if stored == secret || stored != hashSecret(secret) {
		t.Fatal("the database must keep the secret's hash, not the secret")
	}
	if got, err := db.SessionUser(ctx, secret); err != nil || got.Name != "ada" || got.Role != RoleViewer {
		t.Fatalf("SessionUser = %v, %v", got, err)
	}
	// A role change applies to live sessions at once.
	db.CreateUser(ctx, "root", RoleAdmin, "password2")
	db.SetUserRole(ctx, "ada", RoleEditor)
	if got, _ := db.SessionUser(ctx, secret); got == nil || got.Role != RoleEditor {
		t.Fatalf("after promotion the session says %v", got)
	}
	for _, bad := range []string{"", "nonsense", strings.Repeat("x", 1000), secret + "x"} {
		if _, err := db.SessionUser(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("SessionUser(%.10q) = %v, want ErrNotFound", bad, err)
		}
	}

	*now = now.Add(time.Hour)
	if _, err := db.SessionUser(ctx, secret); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v, want ErrNotFound", err)
	}
	// The next login sweeps the expired one.
	second, _, _ := db.CreateSession(ctx, u.ID, time.Hour)
	var n int
	db.reader.QueryRow(`SELECT COUNT(*) FROM sessions`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d sessions after the sweep, want 1", n)
	}
	if err := db.DeleteSession(ctx, second); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SessionUser(ctx, second); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after logout: %v, want ErrNotFound", err)
	}

	// A new password ends every session of the user.
	third, _, _ := db.CreateSession(ctx, u.ID, time.Hour)
	if err := db.SetUserPassword(ctx, "ada", "new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SessionUser(ctx, third); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session survived a password change: %v", err)
	}
	if _, err := db.CheckPassword(ctx, "ada", "new password"); err != nil {
		t.Fatalf("new password refused: %v", err)
	}
}

func TestAPITokens(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	now := manualClock(db)
	db.CreateUser(ctx, "root", RoleAdmin, "password1")
	db.CreateUser(ctx, "ci", RoleEditor, "")

	secret, tok, err := db.CreateAPIToken(ctx, "ci", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, TokenPrefix) || tok.Name != "nightly" {
		t.Fatalf("token %q %+v", secret, tok)
	}
	var stored string
	db.reader.QueryRow(`SELECT token_hash FROM api_tokens`).Scan(&stored)
	if strings.Contains(stored, strings.TrimPrefix(secret, TokenPrefix)) {
		t.Fatal("the database keeps the token itself")
	}
	if _, _, err := db.CreateAPIToken(ctx, "ghost", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token for an unknown user: %v", err)
	}
	u, err := db.TokenUser(ctx, secret)
	if err != nil || u.Name != "ci" || u.Role != RoleEditor {
		t.Fatalf("TokenUser = %v, %v", u, err)
	}
	list, _ := db.ListAPITokens(ctx, "ci")
	if len(list) != 1 || list[0].LastUsedAt == nil || !list[0].LastUsedAt.Equal(*now) {
		t.Fatalf("tokens %+v: last use not recorded", list)
	}
	for _, bad := range []string{"", "nope", TokenPrefix, secret[:len(secret)-1]} {
		if _, err := db.TokenUser(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("TokenUser(%q) = %v, want ErrNotFound", bad, err)
		}
	}
	if err := db.RevokeAPIToken(ctx, "root", tok.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoking another user's token: %v, want ErrNotFound", err)
	}
	if err := db.RevokeAPIToken(ctx, "ci", tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenUser(ctx, secret); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token still works: %v", err)
	}

	// Deleting a user removes its tokens and sessions with it.
	secret2, _, _ := db.CreateAPIToken(ctx, "ci", "")
	u, _ = db.GetUser(ctx, "ci")
	sess, _, _ := db.CreateSession(ctx, u.ID, time.Hour)
	if err := db.DeleteUser(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TokenUser(ctx, secret2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token of a deleted user: %v", err)
	}
	if _, err := db.SessionUser(ctx, sess); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session of a deleted user: %v", err)
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}
