package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/deltascope/deltascope/internal/hubtest"
	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// TestMaskExportRemoteVLA: `mask --export masked|sliced` of a VLA read from
// s3:// and hf:// writes the folder a local VLA gives, byte for byte — the
// OpenVLA-shaped VLA is a sharded folder whose index and config come along
// from the store, the π0.5 VLA a single file.
func TestMaskExportRemoteVLA(t *testing.T) {
	s := s3test.Start(t)
	s.MakeBucket(t, "models")
	h := hubtest.Start(t)
	pair := genOpenVLA(t)
	s.PutDir(t, "models", "openvla/vla", filepath.Join(pair, "vla"))
	h.Commit(t, "lab/openvla", "main", false, hubtest.Dir(t, "vla", filepath.Join(pair, "vla")))
	s.PutDir(t, "models", "pi05/vla", testfixtures.Path("pi05", "vla"))
	h.Commit(t, "lab/pi05", "main", false, hubtest.Dir(t, "vla", testfixtures.Path("pi05", "vla")))

	openvlaBase := []string{"--base", filepath.Join(pair, "base", "prismatic.safetensors"),
		"--base", "vision_backbone.featurizer.=" + filepath.Join(pair, "base", "dinov2.safetensors"),
		"--base", "vision_backbone.fused_featurizer.=" + filepath.Join(pair, "base", "siglip.safetensors")}
	for _, c := range []struct {
		name, preset, local string
		base, remotes       []string
	}{
		{"openvla", "openvla-moderate", filepath.Join(pair, "vla"), openvlaBase, []string{"s3://models/openvla/vla", "hf://lab/openvla/vla"}},
		{"pi05", "pi05-moderate", testfixtures.Path("pi05", "vla", "model.safetensors"), []string{"--base", testfixtures.Path("pi05", "base")},
			[]string{"s3://models/pi05/vla/model.safetensors", "hf://lab/pi05/vla/model.safetensors"}},
	} {
		for _, export := range []string{"masked", "sliced"} {
			mask := func(vla, out string) {
				t.Helper()
				args := append(append([]string{"mask"}, c.base...), "--vla", vla, "--preset", c.preset, "--export", export, "--out", out)
				if code, _, stderr := run(t, args...); code != 0 {
					t.Fatalf("mask --vla %s --export %s: %s", vla, export, stderr)
				}
			}
			want := filepath.Join(t.TempDir(), "local")
			mask(c.local, want)
			wantFiles := readTree(t, want)
			if c.name == "openvla" && (wantFiles["config.json"] == nil || wantFiles["model.safetensors.index.json"] == nil) {
				t.Fatalf("the local export lacks the config or the index: %v", sortedNames(wantFiles))
			}
			for _, vla := range c.remotes {
				got := filepath.Join(t.TempDir(), "remote")
				mask(vla, got)
				gotFiles := readTree(t, got)
				if !slices.Equal(sortedNames(gotFiles), sortedNames(wantFiles)) {
					t.Errorf("%s %s: files %v, want %v", vla, export, sortedNames(gotFiles), sortedNames(wantFiles))
				}
				for name, data := range wantFiles {
					if !bytes.Equal(gotFiles[name], data) {
						t.Errorf("%s %s: %s differs from the local export", vla, export, name)
					}
				}
			}
		}
	}
}

func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = data
	}
	return out
}

func sortedNames(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
