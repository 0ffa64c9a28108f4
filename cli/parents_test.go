package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// makeParents reports exactly the folders it made, deepest first, and
// removeMade removes only those, only while empty.
func TestMakeParents(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	made, err := makeParents(filepath.Join(root, "old", "a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "old/a/b/c"), filepath.Join(root, "old/a/b"), filepath.Join(root, "old/a")}
	if !slices.Equal(made, want) {
		t.Fatalf("made %q, want %q", made, want)
	}
	if info, err := os.Stat(made[0]); err != nil || !info.IsDir() {
		t.Fatalf("the deepest folder: %v", err)
	}
	// Something else wrote into one of them: it stays, with its parents.
	if err := os.WriteFile(filepath.Join(root, "old/a/b/keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	removeMade(made)
	if _, err := os.Stat(made[0]); !os.IsNotExist(err) {
		t.Errorf("the empty folder c was kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "old/a/b/keep")); err != nil {
		t.Errorf("a file another writer put in a made folder: %v", err)
	}
	os.Remove(filepath.Join(root, "old/a/b/keep"))
	removeMade(made)
	if left, _ := os.ReadDir(filepath.Join(root, "old")); len(left) != 0 {
		t.Errorf("left behind in old: %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, "old")); err != nil {
		t.Errorf("the folder that was there before: %v", err)
	}
	// A folder that exists already: nothing made, nothing to remove.
	if made, err := makeParents(root); err != nil || len(made) != 0 {
		t.Errorf("an existing folder: made %q (%v)", made, err)
	}
}

// `mask --out` under new folders that then fails, before the analysis (a
// recipe that is not there) or during it (a VLA that is not there), removes
// the folders it made and keeps the one that was there.
func TestRunMaskFailureRemovesParents(t *testing.T) {
	for name, args := range map[string][]string{
		"no recipe": {"--base", maskFixtures + "/base", "--vla", maskFixtures + "/vla/model.safetensors", "--recipe", "/nonexistent/recipe.json"},
		"no vla":    {"--base", maskFixtures + "/base", "--vla", maskFixtures + "/vla/nope.safetensors", "--preset", "pi05-light"},
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "a", "b", "recipe.json")
			var stdout, stderr bytes.Buffer
			err := runMask(context.Background(), Env{Stdout: &stdout, Stderr: &stderr}, append(args, "--export", "recipe", "--out", out))
			if err == nil {
				t.Fatal("mask succeeded")
			}
			empty(t, parent)
		})
	}
}
