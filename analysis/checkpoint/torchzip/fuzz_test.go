package torchzip

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/internal/hostile"
)

// fixturePickle returns the data.pkl of a fixture archive and its storage table.
func fixturePickle(tb testing.TB, name string) ([]byte, map[string]storageEntry) {
	tb.Helper()
	path := filepath.Join(fixturesDir(tb), "pi05", "base_pickle", name)
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		tb.Fatal(err)
	}
	prefix, pkl, err := findDataPkl(zr, path)
	if err != nil {
		tb.Fatal(err)
	}
	table, err := storageTable(zr, prefix, int64(len(raw)), path)
	if err != nil {
		tb.Fatal(err)
	}
	rc, err := pkl.Open()
	if err != nil {
		tb.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return data, table
}

// FuzzUnpickle runs the unpickler and flattener on arbitrary data.pkl bytes
// against the flat fixture's storage table (both fixtures use the same storage
// keys and sizes). It must never panic, and whatever it accepts must lie inside
// the storages it names.
func FuzzUnpickle(f *testing.F) {
	flat, table := fixturePickle(f, "pytorch_model.bin")
	nested, _ := fixturePickle(f, "nested-checkpoint.pt")
	f.Add(flat)
	f.Add(nested)
	f.Add(flat[:len(flat)/2])
	f.Add(callPickle("os", "system", false))
	f.Add(callPickle("posix", "system", true))
	f.Add(onePickle("w", "FloatStorage", "0", 48, 0, []int32{48}, []int32{1}))
	f.Add(onePickle("w", "FloatStorage", "0", 48, 0, []int32{6, 8}, []int32{1, 6}))
	f.Add(onePickle("w", "FloatStorage", "99", 48, 0, []int32{48}, []int32{1}))
	f.Add(newPickle().op(opEmptyList, opBinput, 0, opBinget, 0, opAppend).stop())
	f.Add(newPickle().op(opEmptyDict, opBinput, 0, opBinint1, 1, opBinget, 0, opSetitem).stop())
	f.Add(newPickle().op(opBinunicode, 0xff, 0xff, 0xff, 0xff).stop())
	f.Add(newPickle().op(opLong1, 9, 1, 2, 3, 4, 5, 6, 7, 8, 0x80).stop())
	f.Add([]byte(strings.Repeat("(", 300)))
	f.Add(hostile.PickleBombPickle(4, 1000)) // the review's bomb, small: MARK + Nones + APPENDS, repeated
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := unpickle("fuzz.pkl", data, table, 10000)
		if err != nil {
			return
		}
		checkArchive(t, a, table)
	})
}

// checkArchive asserts what every accepted archive promises: unique names,
// file order, and tensor bytes inside one storage entry.
func checkArchive(t *testing.T, a *Archive, table map[string]storageEntry) {
	t.Helper()
	names := make(map[string]bool)
	for i, e := range a.Tensors {
		if names[e.Name] {
			t.Fatalf("duplicate name %q", e.Name)
		}
		names[e.Name] = true
		if i > 0 && a.Tensors[i-1].Offset > e.Offset {
			t.Fatalf("tensors not sorted by offset at %q", e.Name)
		}
		if e.Size < 0 || e.Size != elementsOf(e.Shape)*(e.DType.Bits()/8) {
			t.Fatalf("%q: size %d for %s %v", e.Name, e.Size, e.DType, e.Shape)
		}
		inside := false
		for _, s := range table {
			if e.Offset >= s.offset && e.Offset+e.Size <= s.offset+s.size {
				inside = true
				break
			}
		}
		if !inside {
			t.Fatalf("%q: bytes [%d, %d) are in no storage", e.Name, e.Offset, e.Offset+e.Size)
		}
	}
	for _, n := range a.NonTensors {
		if names[n.Name] {
			t.Fatalf("duplicate name %q", n.Name)
		}
		names[n.Name] = true
	}
}

func elementsOf(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// FuzzRead runs the whole reader, zip layer included, on small archives.
func FuzzRead(f *testing.F) {
	f.Add(torchZip(f, onePickle("w", "FloatStorage", "0", 8, 0, []int32{8}, []int32{1}), 32))
	f.Add(torchZip(f, onePickle("w", "HalfStorage", "1", 8, 0, []int32{2, 4}, []int32{4, 1}), 32, 16))
	f.Add(buildZip(f, zipEntry{name: "archive/data.pkl", data: onePickle("w", "FloatStorage", "0", 8, 0, []int32{8}, []int32{1})},
		zipEntry{name: "archive/data/0", data: make([]byte, 32), method: zip.Deflate}))
	f.Add(append(append([]byte{}, legacyHeader...), 0, 0, 0))
	f.Add(hostile.PickleBomb(4, 1000, true)) // deflated bomb, small enough to stay under the ratio
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data), int64(len(data)), "fuzz.bin", 1<<20, 1000)
		if err != nil {
			return
		}
		for _, e := range a.Tensors {
			if e.Offset < 0 || e.Size < 0 || e.Offset+e.Size > int64(len(data)) {
				t.Fatalf("%q: bytes [%d, %d) outside the %d-byte file", e.Name, e.Offset, e.Offset+e.Size, len(data))
			}
		}
	})
}
