package arch

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/internal/testfixtures"
)

// The real fixtures live in testdata/fixtures (see its README).
var pi05Dir = testfixtures.Path("pi05")

// readHeaderNames reads the tensor names and shapes of one safetensors file with
// the smallest parser that will do: an 8-byte little-endian length, then a JSON
// header. The checkpoint readers are another package's job; this one only needs
// names.
func readHeaderNames(t testing.TB, path string) []Named {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open fixture: %v", err)
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		t.Fatalf("%s: header length: %v", path, err)
	}
	if n > 1<<24 {
		t.Fatalf("%s: header length %d too large", path, n)
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(f, raw); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatalf("%s: header JSON: %v", path, err)
	}
	var out []Named
	for name, entry := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct{ Shape []int64 }
		if err := json.Unmarshal(entry, &info); err != nil {
			t.Fatalf("%s: tensor %q: %v", path, name, err)
		}
		out = append(out, Named{Name: name, Shape: info.Shape})
	}
	slices.SortFunc(out, func(a, b Named) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// loadPi05 returns the fixture's base (4 shards, via the index) and VLA tensors.
func loadPi05(t testing.TB) (base, vla []Named) {
	t.Helper()
	indexPath := filepath.Join(pi05Dir, "base", "model.safetensors.index.json")
	data, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatalf("read index: %v", err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatalf("%s: %v", indexPath, err)
	}
	var shards []string
	for _, shard := range index.WeightMap {
		if !slices.Contains(shards, shard) {
			shards = append(shards, shard)
		}
	}
	slices.Sort(shards)
	for _, shard := range shards {
		base = append(base, readHeaderNames(t, filepath.Join(pi05Dir, "base", shard))...)
	}
	if len(base) != len(index.WeightMap) {
		t.Fatalf("shards hold %d tensors, index lists %d", len(base), len(index.WeightMap))
	}
	vla = readHeaderNames(t, filepath.Join(pi05Dir, "vla", "model.safetensors"))
	return base, vla
}

type pi05Reference struct {
	Pairs []struct {
		Base      string  `json:"base"`
		VLA       string  `json:"vla"`
		ShapeBase []int64 `json:"shape_base"`
		ShapeVLA  []int64 `json:"shape_vla"`
	} `json:"pairs"`
	VLAOnly  []string `json:"vla_only"`
	BaseOnly []string `json:"base_only"`
}

func loadPi05Reference(t testing.TB) pi05Reference {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(pi05Dir, "reference.json"))
	if err != nil {
		t.Fatalf("read reference: %v", err)
	}
	var ref pi05Reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatalf("reference.json: %v", err)
	}
	return ref
}
