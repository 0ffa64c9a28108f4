package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// Every way out of the allowed folders is refused with a message that names
// them and the --root flag that adds one (issue 13): a path elsewhere, a file
// symlinked out, a folder symlinked out.
func TestOutsideRootsNamesThemAndTheFlag(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret.safetensors")
	if err := os.WriteFile(secret, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(root, "link-out.safetensors")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "dir-out")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, path, what string }{
		{"elsewhere", secret, "outside the allowed folders"},
		{"file symlinked out", filepath.Join(root, "link-out.safetensors"), "symlink leads outside the allowed folders"},
		{"folder symlinked out", filepath.Join(root, "dir-out", "secret.safetensors"), "outside the allowed folders"},
	} {
		_, err := OpenSource(c.path, Options{Roots: []string{root}})
		var te *tensor.Error
		if !errors.As(err, &te) || !te.Forbidden {
			t.Errorf("%s: %v, want a refusal", c.name, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.what) || !strings.Contains(msg, "("+root+")") || !strings.Contains(msg, "--root DIR") {
			t.Errorf("%s: %q; want %q, the allowed folder %s and --root DIR", c.name, msg, c.what, root)
		}
	}
}
