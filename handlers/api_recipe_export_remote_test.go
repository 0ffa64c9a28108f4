package handlers

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/internal/s3test"
	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/store"
)

// TestExportRemoteVLA: on a server whose --root includes an s3:// prefix, the
// masked and sliced downloads of an analysis whose VLA is an object there
// hold the same files, byte for byte, as those of the same VLA on disk, the
// config.json beside it included; only the recipe file (which names its
// analysis) differs.
func TestExportRemoteVLA(t *testing.T) {
	s3 := s3test.Start(t)
	s3.MakeBucket(t, "models")
	config := []byte(`{"model_type": "pi05", "text_config": {"intermediate_size": 64}}` + "\n")
	s3.PutDir(t, "models", "runs/pi05/vla", testfixtures.Path("pi05", "vla"))
	s3.PutBytes(t, "models", "runs/pi05/vla/config.json", config)
	const remoteVLA = "s3://models/runs/pi05/vla/model.safetensors"
	var localID, remoteID string
	l := startLiveServer(t, testServerOptions{
		config: func(c *Config) { c.Roots = append(c.Roots, "s3://models/runs") },
		prepare: func(db *store.DB, root string) {
			if err := os.WriteFile(filepath.Join(root, "pi05", "vla", "config.json"), config, 0o644); err != nil {
				t.Fatal(err)
			}
			base := []string{filepath.Join(root, "pi05", "base")}
			roots := []string{root, "s3://models/runs"}
			localID = analyzeSpecs(t, db, roots, base, []string{filepath.Join(root, "pi05", "vla", "model.safetensors")})
			remoteID = analyzeSpecs(t, db, roots, base, []string{remoteVLA})
		},
	})
	for _, kind := range []string{"masked", "sliced"} {
		get := func(id string) map[string][]byte {
			t.Helper()
			resp, err := http.Post(fmt.Sprintf("%s/api/analyses/%s/export?kind=%s", l.URL, id, kind), "application/json", strings.NewReader(`{"preset": "pi05-moderate"}`))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s export of %s: %d %.300s %v", kind, id, resp.StatusCode, data, err)
			}
			files := untar(t, data)
			if len(files) < 3 {
				t.Fatalf("%s export of %s has only %v", kind, id, slices.Sorted(maps.Keys(files)))
			}
			return files
		}
		want, got := get(localID), get(remoteID)
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
			t.Fatalf("%s: remote export has %v, local %v", kind, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		for name, w := range want {
			if strings.HasSuffix(name, "/"+prune.RecipeFile) {
				continue
			}
			if !bytes.Equal(got[name], w) {
				t.Errorf("%s: %s differs from the local export's (%d bytes, want %d)", kind, name, len(got[name]), len(w))
			}
			if strings.HasSuffix(name, "/config.json") && kind == "masked" && !bytes.Equal(w, config) {
				t.Errorf("masked: config.json was not copied verbatim")
			}
		}
	}
}
