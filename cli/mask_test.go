package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

var maskFixtures = testfixtures.Path("pi05")

func TestRunMaskExports(t *testing.T) {
	dir := t.TempDir()
	pair := []string{"--base", maskFixtures + "/base", "--vla", maskFixtures + "/vla/model.safetensors"}
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		err := runMask(context.Background(), Env{Stdout: &stdout, Stderr: &stderr}, append(append([]string{}, pair...), args...))
		return stdout.String(), err
	}
	recipePath := filepath.Join(dir, "recipe.json")
	if _, err := run(t, "--preset", "pi05-light", "--export", "recipe", "--out", recipePath); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(recipePath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := prune.ReadRecipe(f)
	f.Close()
	if err != nil || r.Name != "pi05-light" || !strings.HasPrefix(r.VLAFingerprint, "layout-sha256:") || r.EngineVersion == "" {
		t.Fatalf("recipe %+v: %v", r, err)
	}

	for _, tc := range []struct {
		export string
		check  func(t *testing.T, out, stdout string)
	}{
		{"indices", func(t *testing.T, out, _ string) {
			if b, _ := os.ReadFile(out); !bytes.Contains(b, []byte(`"tensors":{`)) || !bytes.Contains(b, []byte("mlp.gate_proj.weight")) {
				t.Errorf("indices file lacks the pruned tensors")
			}
		}},
		{"masks", func(t *testing.T, out, stdout string) {
			side, err := checkpoint.OpenSide([]string{out}, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer side.Close()
			if len(side.Tensors) == 0 || !strings.HasSuffix(side.Tensors[0].Name, "__") || !strings.Contains(stdout, "load_file") {
				t.Errorf("masks file of %d tensors; stdout %q", len(side.Tensors), stdout)
			}
		}},
		{"masked", func(t *testing.T, out, _ string) {
			orig, _ := os.Stat(maskFixtures + "/vla/model.safetensors")
			got, err := os.Stat(filepath.Join(out, "model.safetensors"))
			if err != nil || got.Size() != orig.Size() {
				t.Errorf("masked copy: %v", err)
			}
		}},
		{"sliced", func(t *testing.T, out, stdout string) {
			side, err := checkpoint.OpenSide([]string{filepath.Join(out, "model.safetensors")}, checkpoint.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer side.Close()
			orig, _ := checkpoint.OpenSide([]string{maskFixtures + "/vla/model.safetensors"}, checkpoint.Options{})
			defer orig.Close()
			if side.Params() >= orig.Params() || !strings.Contains(stdout, groupDigits(side.Params())) {
				t.Errorf("sliced has %d parameters (VLA %d); stdout %q", side.Params(), orig.Params(), stdout)
			}
			if _, err := os.Stat(filepath.Join(out, prune.WidthsFile)); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.export, func(t *testing.T) {
			out := filepath.Join(dir, tc.export+".out")
			stdout, err := run(t, "--recipe", recipePath, "--export", tc.export, "--out", out)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, out, stdout)
		})
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no recipe", []string{"--export", "indices", "--out", filepath.Join(dir, "x")}, "exactly one of --recipe"},
		{"bad export", []string{"--preset", "pi05-light", "--export", "zip", "--out", filepath.Join(dir, "x")}, `--export "zip"`},
		{"bad preset", []string{"--preset", "pi06", "--export", "indices", "--out", filepath.Join(dir, "x")}, `unknown preset "pi06"`},
		{"out exists", []string{"--preset", "pi05-light", "--export", "indices", "--out", recipePath}, "already exists"},
		{"missing recipe", []string{"--recipe", filepath.Join(dir, "nope.json"), "--export", "indices", "--out", filepath.Join(dir, "x")}, "nope.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// --out may name a folder whose parents do not exist yet.
func TestRunMaskMakesParents(t *testing.T) {
	out := filepath.Join(t.TempDir(), "a", "b", "sliced")
	var stdout, stderr bytes.Buffer
	err := runMask(context.Background(), Env{Stdout: &stdout, Stderr: &stderr},
		[]string{"--base", maskFixtures + "/base", "--vla", maskFixtures + "/vla/model.safetensors", "--preset", "pi05-light", "--export", "sliced", "--out", out})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "widths.json")); err != nil {
		t.Errorf("sliced export under new parents: %v", err)
	}
}
