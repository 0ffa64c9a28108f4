package cli

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/deltascope/deltascope/store"
)

// runCLI runs the command line in process with stdin.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(stdin), PasswordCost: bcrypt.MinCost}) // fast hashes
	return code, out.String(), errb.String()
}

func TestUserCommands(t *testing.T) {
	data := t.TempDir()
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from a file 123\n"), 0o600)

	// An admin without a password given: one is generated and printed once.
	code, out, _ := runCLI(t, "", "user", "add", "ada", "--role", "admin", "--data", data)
	if code != 0 || !strings.Contains(out, "created user ada (admin)") {
		t.Fatalf("user add: %d %q", code, out)
	}
	_, generated, ok := strings.Cut(out, "password: ")
	generated = strings.TrimSpace(generated)
	if !ok || len(generated) < 16 {
		t.Fatalf("no generated password in %q", out)
	}

	steps := []struct {
		name, stdin string
		args        []string
		code        int
		stdout      string // must contain
		stderr      string // must contain
	}{
		{"password on stdin", "from stdin 123\r\n", []string{"user", "add", "bob", "--role", "editor", "--password-stdin", "--data", data}, 0, "created user bob (editor)", ""},
		{"password from a file", "", []string{"user", "add", "cy", "--role", "viewer", "--password-file", pwFile, "--data", data}, 0, "created user cy (viewer)", ""},
		{"duplicate", "", []string{"user", "add", "bob", "--role", "viewer", "--data", data}, 1, "", `user "bob" already exists`},
		{"no role", "", []string{"user", "add", "dee", "--data", data}, 1, "", "--role is required"},
		{"bad role", "", []string{"user", "add", "dee", "--role", "root", "--data", data}, 1, "", "viewer, editor or admin"},
		{"bad name", "", []string{"user", "add", "d e", "--role", "viewer", "--data", data}, 1, "", "user name"},
		{"short password", "short\n", []string{"user", "add", "dee", "--role", "viewer", "--password-stdin", "--data", data}, 1, "", "password must be"},
		{"empty stdin", "", []string{"user", "add", "dee", "--role", "viewer", "--password-stdin", "--data", data}, 1, "", "no password"},
		{"missing file", "", []string{"user", "add", "dee", "--role", "viewer", "--password-file", pwFile + ".x", "--data", data}, 1, "", "no such file"},
		{"both sources", "x\n", []string{"user", "add", "dee", "--role", "viewer", "--password-stdin", "--password-file", pwFile, "--data", data}, 1, "", "not both"},
		{"no name", "", []string{"user", "add", "--role", "viewer", "--data", data}, 1, "", "give the user NAME"},
		{"unknown subcommand", "", []string{"user", "frobnicate"}, 1, "", "unknown subcommand"},
		{"list", "", []string{"user", "list", "--data", data}, 0, "bob   editor", ""},
		{"promote", "", []string{"user", "role", "cy", "--role", "editor", "--data", data}, 0, "cy is now editor", ""},
		{"last admin stays", "", []string{"user", "role", "ada", "--role", "viewer", "--data", data}, 1, "", "last admin"},
		{"new password", "changed pass 1\n", []string{"user", "passwd", "cy", "--password-stdin", "--data", data}, 0, "password of cy changed; their sessions are ended and their API tokens revoked", ""},
		{"passwd help", "", []string{"user", "passwd", "--help"}, 0, "ends the user's sessions and revokes all their API tokens", ""},
		{"user help", "", []string{"user", "--help"}, 0, "ends the user's sessions and revokes all their API tokens", ""},
		{"token for nobody", "", []string{"user", "token", "zed", "--data", data}, 1, "", `user "zed" not found`},
		{"delete", "", []string{"user", "delete", "bob", "--data", data}, 0, "deleted user bob", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, st.stdin, st.args...)
			if code != st.code || !strings.Contains(out, st.stdout) || !strings.Contains(errOut, st.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errOut, st.code, st.stdout, st.stderr)
			}
			if code != 0 && (strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "deltascope: ")) {
				t.Fatalf("failure is not one line: %q", errOut)
			}
			if strings.Contains(out+errOut, "from stdin") || strings.Contains(out+errOut, "from a file") {
				t.Fatal("a given password was echoed")
			}
		})
	}

	code, token, notice := runCLI(t, "", "user", "token", "ada", "--label", "ci", "--data", data)
	token = strings.TrimSpace(token)
	if code != 0 || !strings.HasPrefix(token, store.TokenPrefix) || strings.Contains(token, "\n") || !strings.Contains(notice, "shown once") {
		t.Fatalf("user token: %d %q %q", code, token, notice)
	}

	// What the commands wrote is what the server will check.
	ctx := context.Background()
	db, err := store.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logins := []struct{ name, password string }{{"ada", generated}, {"cy", "changed pass 1"}}
	for _, l := range logins {
		if _, err := db.CheckPassword(ctx, l.name, l.password); err != nil {
			t.Fatalf("%s cannot log in: %v", l.name, err)
		}
	}
	if _, err := db.CheckPassword(ctx, "cy", "from a file 123"); err == nil {
		t.Fatal("the old password still works")
	}
	if u, err := db.TokenUser(ctx, token); err != nil || u.Name != "ada" {
		t.Fatalf("token: %v %v", u, err)
	}
	if _, err := db.GetUser(ctx, "bob"); err == nil {
		t.Fatal("deleted user still there")
	}
}

func TestServeAuthFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no accounts on a network address", []string{"--auth", "none", "--addr", "0.0.0.0:0"}, "not a loopback address"},
		{"no accounts on all interfaces", []string{"--addr", ":0"}, "not a loopback address"},
		{"unknown mode", []string{"--auth", "ldap"}, "must be none or accounts"},
		{"bad trusted origin", []string{"--auth", "accounts", "--trusted-origin", "https://x.example/path"}, "--trusted-origin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--no-demo", "--data", t.TempDir()}, tc.args...)
			code, _, errOut := runCLI(t, "", args...)
			if code == 0 || !strings.Contains(errOut, tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want failure mentioning %q", code, errOut, tc.stderr)
			}
		})
	}
}

// TestServeWithAccounts starts a real server process in accounts mode with a
// user made by `user add`, and checks that it refuses anonymous requests and
// accepts the user's token.
func TestServeWithAccounts(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := runCLI(t, "", "user", "add", "ada", "--role", "viewer", "--data", data); code != 0 {
		t.Fatal(errOut)
	}
	_, token, _ := runCLI(t, "", "user", "token", "ada", "--data", data)
	token = strings.TrimSpace(token)
	p := startServer(t, "--auth", "accounts", "--data", data)

	get := func(path, bearer string) int {
		req, _ := http.NewRequest("GET", p.url+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	checks := []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", 200},
		{"/api/analyses", "", 401},
		{"/api/analyses", token, 200},
		{"/api/users", token, 403},
		{"/api/analyses", token + "x", 401},
	}
	for _, c := range checks {
		if got := get(c.path, c.token); got != c.want {
			t.Errorf("GET %s (token %v): %d, want %d", c.path, c.token != "", got, c.want)
		}
	}
}

// user unlock lifts the login limits of an account (the server keys them on
// the account's unlock count).
func TestUserUnlock(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := runCLI(t, "", "user", "add", "ed", "--role", "editor", "--data", data); code != 0 {
		t.Fatalf("user add: %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, "", "user", "unlock", "ed", "--data", data)
	if code != 0 || !strings.Contains(out, "unlocked logins of ed") {
		t.Fatalf("user unlock: %d %q %q", code, out, errOut)
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.LoginUnlocks(context.Background(), "ed"); err != nil || n != 1 {
		t.Errorf("unlock count %d (%v), want 1", n, err)
	}
	if code, _, errOut := runCLI(t, "", "user", "unlock", "nobody", "--data", data); code == 0 || !strings.Contains(errOut, `user "nobody" not found`) {
		t.Errorf("unlock of an unknown user: %d %q", code, errOut)
	}
}

// user token: an expiry by default (90 days), --list with last use and
// expiry, --revoke ID and --all.
func TestUserTokenLifecycle(t *testing.T) {
	data := t.TempDir()
	if code, _, errOut := runCLI(t, "", "user", "add", "ci", "--role", "editor", "--data", data); code != 0 {
		t.Fatalf("user add: %d %s", code, errOut)
	}
	var secrets []string
	for _, args := range [][]string{{"--label", "nightly"}, {"--expires", "never"}, {"--expires", "12h"}} {
		code, out, errOut := runCLI(t, "", append([]string{"user", "token", "ci", "--data", data}, args...)...)
		if code != 0 || !strings.HasPrefix(out, store.TokenPrefix) {
			t.Fatalf("user token %v: %d %q %q", args, code, out, errOut)
		}
		secrets = append(secrets, strings.TrimSpace(out))
	}
	if code, _, errOut := runCLI(t, "", "user", "token", "ci", "--expires", "soon", "--data", data); code == 0 || !strings.Contains(errOut, "--expires") {
		t.Errorf("a bad --expires: %d %q", code, errOut)
	}
	code, out, _ := runCLI(t, "", "user", "token", "ci", "--list", "--data", data)
	if code != 0 || !strings.Contains(out, "nightly") || strings.Count(out, "never") != 1 || strings.Count(out, "live") != 3 {
		t.Fatalf("user token --list: %d\n%s", code, out)
	}
	if code, out, errOut := runCLI(t, "", "user", "token", "ci", "--revoke", "1", "--data", data); code != 0 || !strings.Contains(out, "revoked token 1 of ci") {
		t.Errorf("--revoke 1: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "", "user", "token", "ci", "--all", "--data", data); code != 0 || !strings.Contains(out, "revoked 2 tokens of ci") {
		t.Errorf("--all: %d %q", code, out)
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range secrets {
		if _, err := db.TokenUser(context.Background(), s); err == nil {
			t.Error("a token still works after --revoke and --all")
		}
	}
}
