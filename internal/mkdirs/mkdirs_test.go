package mkdirs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// All reports exactly the folders it made, deepest first, and Remove
// removes only those, only while empty.
func TestAll(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	made, err := All(filepath.Join(root, "old", "a", "b", "c"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "old/a/b/c"), filepath.Join(root, "old/a/b"), filepath.Join(root, "old/a")}
	if !slices.Equal([]string(made), want) {
		t.Fatalf("made %q, want %q", made, want)
	}
	if info, err := os.Stat(made[0]); err != nil || !info.IsDir() {
		t.Fatalf("the deepest folder: %v", err)
	}
	// Something else wrote into one of them: it stays, with its parents.
	if err := os.WriteFile(filepath.Join(root, "old/a/b/keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	made.Remove()
	if _, err := os.Stat(made[0]); !os.IsNotExist(err) {
		t.Errorf("the empty folder c was kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "old/a/b/keep")); err != nil {
		t.Errorf("a file another writer put in a made folder: %v", err)
	}
	os.Remove(filepath.Join(root, "old/a/b/keep"))
	made.Remove()
	if left, _ := os.ReadDir(filepath.Join(root, "old")); len(left) != 0 {
		t.Errorf("left behind in old: %v", left)
	}
	if _, err := os.Stat(filepath.Join(root, "old")); err != nil {
		t.Errorf("the folder that was there before: %v", err)
	}
	// A folder that exists already: nothing made, nothing to remove.
	if made, err := All(root); err != nil || len(made) != 0 {
		t.Errorf("an existing folder: made %q (%v)", made, err)
	}
}
