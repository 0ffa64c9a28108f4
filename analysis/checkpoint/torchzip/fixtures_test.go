package torchzip

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/internal/testfixtures"
)

// fixturesDir is the repository's testdata/fixtures folder.
func fixturesDir(testing.TB) string { return testfixtures.Dir() }

func readArchive(tb testing.TB, path string) (*Archive, *os.File) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	a, err := Read(f, st.Size(), path, 0, 0)
	if err != nil {
		tb.Fatalf("Read(%s): %v", path, err)
	}
	return a, f
}

// stTensor is one tensor of a safetensors file, with its bytes.
type stTensor struct {
	dtype string
	shape []int64
	data  []byte
}

// readSafetensorsFolder parses a sharded safetensors folder minimally (8-byte
// little-endian header length, JSON header, data_offsets relative to 8+N), so
// that this test does not depend on the safetensors reader it is checked against.
func readSafetensorsFolder(tb testing.TB, dir string) map[string]stTensor {
	tb.Helper()
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "model.safetensors.index.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		tb.Fatal(err)
	}
	out := make(map[string]stTensor)
	shards := make(map[string]bool)
	for _, s := range index.WeightMap {
		shards[s] = true
	}
	for shard := range shards {
		file, err := os.ReadFile(filepath.Join(dir, shard))
		if err != nil {
			tb.Fatal(err)
		}
		n := binary.LittleEndian.Uint64(file[:8])
		var header map[string]json.RawMessage
		if err := json.Unmarshal(file[8:8+n], &header); err != nil {
			tb.Fatal(err)
		}
		for name, msg := range header {
			if name == "__metadata__" {
				continue
			}
			var info struct {
				DType   string  `json:"dtype"`
				Shape   []int64 `json:"shape"`
				Offsets [2]int  `json:"data_offsets"`
			}
			if err := json.Unmarshal(msg, &info); err != nil {
				tb.Fatal(err)
			}
			base := 8 + int(n)
			out[name] = stTensor{info.DType, info.Shape, file[base+info.Offsets[0] : base+info.Offsets[1]]}
		}
	}
	return out
}

// checkAgainst compares every tensor of the archive, through rename, with the
// safetensors base: name, dtype, shape and the raw bytes at Offset/Size.
func checkAgainst(t *testing.T, a *Archive, f *os.File, want map[string]stTensor, rename func(string) string) {
	t.Helper()
	if len(a.Tensors) != len(want) {
		t.Errorf("%d tensors, the safetensors base has %d", len(a.Tensors), len(want))
	}
	for i, e := range a.Tensors {
		if i > 0 && a.Tensors[i-1].Offset > e.Offset {
			t.Errorf("tensors not sorted by offset at %s", e.Name)
		}
		w, ok := want[rename(e.Name)]
		if !ok {
			t.Errorf("%s (as %s) is not in the safetensors base", e.Name, rename(e.Name))
			continue
		}
		if e.DType.String() != w.dtype || !slices.Equal(e.Shape, w.shape) {
			t.Errorf("%s: %s %v, safetensors says %s %v", e.Name, e.DType, e.Shape, w.dtype, w.shape)
		}
		if e.Size != int64(len(w.data)) {
			t.Errorf("%s: %d bytes, safetensors holds %d", e.Name, e.Size, len(w.data))
			continue
		}
		got := make([]byte, e.Size)
		if _, err := f.ReadAt(got, e.Offset); err != nil {
			t.Fatalf("%s: ReadAt(%d): %v", e.Name, e.Offset, err)
		}
		if !bytes.Equal(got, w.data) {
			t.Errorf("%s: bytes at offset %d differ from the safetensors base", e.Name, e.Offset)
		}
	}
}

func TestFlatPickleMatchesSafetensorsBase(t *testing.T) {
	fx := fixturesDir(t)
	a, f := readArchive(t, filepath.Join(fx, "pi05", "base_pickle", "pytorch_model.bin"))
	want := readSafetensorsFolder(t, filepath.Join(fx, "pi05", "base"))
	checkAgainst(t, a, f, want, func(s string) string { return s })
	if len(a.NonTensors) != 0 {
		t.Errorf("flat state dict reports non-tensors %v", a.NonTensors)
	}
}

func TestNestedPickleFlattensToDottedNames(t *testing.T) {
	fx := fixturesDir(t)
	a, f := readArchive(t, filepath.Join(fx, "pi05", "base_pickle", "nested-checkpoint.pt"))
	want := readSafetensorsFolder(t, filepath.Join(fx, "pi05", "base"))
	var vision, lm int
	for _, e := range a.Tensors {
		switch {
		case strings.HasPrefix(e.Name, "model.vision.vision_model."):
			vision++
		case strings.HasPrefix(e.Name, "model.lm."):
			lm++
		default:
			t.Errorf("unexpected flattened name %q", e.Name)
		}
	}
	if vision == 0 || lm == 0 {
		t.Errorf("%d vision and %d lm tensors; want both", vision, lm)
	}
	// The nested file holds the same tensors: vision under the base's
	// vision_tower., the rest under its own names.
	checkAgainst(t, a, f, want, func(s string) string {
		if rest, ok := strings.CutPrefix(s, "model.vision."); ok {
			return "vision_tower." + rest
		}
		return strings.TrimPrefix(s, "model.lm.")
	})
	wantNon := []NonTensor{{"step", "int 1234"}, {"note", `str "nested"`}}
	if !slices.Equal(a.NonTensors, wantNon) {
		t.Errorf("non-tensors %q, want %q", a.NonTensors, wantNon)
	}
}

func BenchmarkReadFlatPickle(b *testing.B) {
	path := filepath.Join(fixturesDir(b), "pi05", "base_pickle", "pytorch_model.bin")
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	for b.Loop() {
		if _, err := Read(f, st.Size(), path, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}
