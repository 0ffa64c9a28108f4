package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
)

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
