package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/internal/pgtest"
	"github.com/deltascope/deltascope/store"
)

// --db and --data name two different stores: giving both is an error, and so
// is a --db that is not PostgreSQL's, on every command that opens the store.
func TestDBFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "list", "--db", "postgres://u@127.0.0.1:1/x", "--data", t.TempDir()}, "--db and --data are exclusive"},
		{[]string{"user", "add", "ada", "--role", "viewer", "--db", "sqlite:///tmp/x.db"}, "is not a PostgreSQL URL"},
		{[]string{"analyze", "--base", "a", "--vla", "b", "--db", "mysql://u@h/db"}, "is not a PostgreSQL URL"},
		{[]string{"analyze", "--base", "a", "--vla", "b", "--db", "postgres://u@h/db", "--data", "d"}, "--db and --data are exclusive"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--db", "/var/lib/deltascope"}, "is not a PostgreSQL URL"},
	} {
		code, _, stderr := runCLI(t, "", tt.args...)
		if code == 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("deltascope %s: exit %d, stderr %q; want a failure saying %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
}

// TestPostgresStore runs the commands that take --db against a private
// PostgreSQL: accounts made by `user`, an analysis computed by `serve --db`
// (its uploads folder still --data), the same result answered from the cache
// by `analyze --db`.
func TestPostgresStore(t *testing.T) {
	url := pgtest.NewDB(t)
	ctx := context.Background()

	if code, out, errOut := runCLI(t, "", "user", "add", "ada", "--role", "admin", "--db", url); code != 0 || !strings.Contains(out, "created user ada (admin)") {
		t.Fatalf("user add --db: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "", "user", "list", "--db", url); code != 0 || !strings.Contains(out, "ada") {
		t.Fatalf("user list --db: %d %q %q", code, out, errOut)
	}

	root := t.TempDir()
	pair, err := synth.Generate(ctx, synth.Options{Preset: "tinyllama", Scale: 0.01, Out: root, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	pair.Base, pair.VLA = specsUnder(root, pair.Base), specsUnder(root, pair.VLA)
	body, _ := json.Marshal(map[string][]string{"base": pair.Base, "vla": pair.VLA})
	data := t.TempDir()
	srv := startServer(t, "--db", url, "--data", data, "--root", root)
	id := srv.post(t, "/api/analyses", string(body))["id"].(string)
	srv.waitFor(t, id, "it is done", func(a map[string]any) bool { return a["status"] == "done" })

	db, err := store.OpenURL(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tensors, err := db.Tensors(ctx, id, store.TensorFilter{})
	if err != nil || len(tensors) == 0 {
		t.Fatalf("the server's analysis in PostgreSQL: %d tensors, %v", len(tensors), err)
	}

	// The CLI finds the server's result in the shared store: no new result rows.
	out := filepath.Join(t.TempDir(), "r.json")
	args := []string{"analyze", "--db", url, "--json", out}
	for _, b := range pair.Base {
		args = append(args, "--base", b)
	}
	for _, v := range pair.VLA {
		args = append(args, "--vla", v)
	}
	if code, _, errOut := runCLI(t, "", args...); code != 0 {
		t.Fatalf("analyze --db: %d %q", code, errOut)
	}
	list, err := db.List(ctx, 10)
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("analyses after analyze --db: %d, %v; want only the server's (a cache hit adds none)", len(list), err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tensors []json.RawMessage `json:"tensors"`
	}
	if err := json.Unmarshal(raw, &got); err != nil || len(got.Tensors) != len(tensors) {
		t.Errorf("analyze --db wrote %d tensors (%v), want the stored %d", len(got.Tensors), err, len(tensors))
	}
}
