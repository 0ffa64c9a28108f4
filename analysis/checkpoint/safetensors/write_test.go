package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// writeTestEntry is one tensor as decoded by writeTestParse, independent of the
// package's own parser so that the writer is checked against the format itself.
type writeTestEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets [2]int64
}

// writeTestParse decodes a safetensors file minimally: 8-byte LE length, JSON,
// and returns the tensors in header order, the metadata and the data section.
func writeTestParse(t *testing.T, file []byte) (names []string, entries map[string]writeTestEntry, meta map[string]string, data []byte) {
	t.Helper()
	if len(file) < 8 {
		t.Fatalf("file of %d bytes has no length prefix", len(file))
	}
	n := binary.LittleEndian.Uint64(file[:8])
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	if uint64(len(file)-8) < n {
		t.Fatalf("header length %d exceeds file", n)
	}
	hdr := file[8 : 8+n]
	if trimmed := bytes.TrimRight(hdr, " "); len(trimmed) == 0 || trimmed[len(trimmed)-1] != '}' {
		t.Errorf("header is not JSON padded with spaces: %q", hdr)
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	entries = map[string]writeTestEntry{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		key := tok.(string)
		if key == "__metadata__" {
			if err := dec.Decode(&meta); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var raw struct {
			DType       string   `json:"dtype"`
			Shape       []int64  `json:"shape"`
			DataOffsets [2]int64 `json:"data_offsets"`
		}
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		names = append(names, key)
		entries[key] = writeTestEntry{raw.DType, raw.Shape, raw.DataOffsets}
	}
	return names, entries, meta, file[8+n:]
}

func TestWriterRoundTrip(t *testing.T) {
	tensors := []WriteTensor{
		{Name: "b.weight", DType: tensor.BF16, Shape: []int64{3, 4}},
		{Name: "a.bias", DType: tensor.F32, Shape: []int64{3}},
		{Name: "scalar", DType: tensor.I64, Shape: nil},
		{Name: "empty", DType: tensor.F16, Shape: []int64{0, 8}},
		{Name: "packed", DType: tensor.F4, Shape: []int64{2, 3}},
		{Name: `odd "name" <&>`, DType: tensor.U8, Shape: []int64{5}},
	}
	meta := map[string]string{"format": "pt", "note": "round trip"}
	wantSizes := []int64{24, 12, 8, 0, 3, 5}

	var buf bytes.Buffer
	w, err := NewWriter(&buf, tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	if w.DataSize() != 52 {
		t.Errorf("DataSize() = %d, want 52", w.DataSize())
	}
	if ds, err := DataSize(tensors); err != nil || ds != 52 {
		t.Errorf("DataSize(tensors) = %d, %v; want 52", ds, err)
	}
	if int64(buf.Len()) != w.HeaderSize() {
		t.Errorf("HeaderSize() = %d, header bytes written %d", w.HeaderSize(), buf.Len())
	}
	data := make([]byte, 52)
	for i := range data {
		data[i] = byte(i + 1)
	}
	// Uneven chunks: the writer must not care how data is split.
	for _, chunk := range [][]byte{data[:7], data[7:8], data[8:40], data[40:]} {
		if n, err := w.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("Write(%d bytes) = %d, %v", len(chunk), n, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	names, entries, gotMeta, gotData := writeTestParse(t, buf.Bytes())
	if !reflect.DeepEqual(gotMeta, meta) {
		t.Errorf("metadata = %v, want %v", gotMeta, meta)
	}
	if !bytes.Equal(gotData, data) {
		t.Errorf("data section differs")
	}
	var off int64
	for i, tt := range tensors {
		if names[i] != tt.Name {
			t.Errorf("tensor %d is %q, want %q (declaration order)", i, names[i], tt.Name)
		}
		e := entries[tt.Name]
		if e.DType != tt.DType.String() {
			t.Errorf("%s: dtype %s, want %s", tt.Name, e.DType, tt.DType)
		}
		if len(e.Shape) != len(tt.Shape) || (len(tt.Shape) > 0 && !reflect.DeepEqual(e.Shape, tt.Shape)) {
			t.Errorf("%s: shape %v, want %v", tt.Name, e.Shape, tt.Shape)
		}
		if e.Shape == nil {
			t.Errorf("%s: shape must be written as [] not null", tt.Name)
		}
		if e.DataOffsets != [2]int64{off, off + wantSizes[i]} {
			t.Errorf("%s: offsets %v, want [%d %d]", tt.Name, e.DataOffsets, off, off+wantSizes[i])
		}
		off += wantSizes[i]
	}
}

func TestWriterNoMetadataAndFixtureLayout(t *testing.T) {
	// Same bytes as the reference writer for a one-tensor file without metadata:
	// {"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} padded to 56 bytes.
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []WriteTensor{{Name: "x", DType: tensor.F32, Shape: []int64{2}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	want += strings.Repeat(" ", (8-len(want)%8)%8)
	if got := string(buf.Bytes()[8:]); got != want {
		t.Errorf("header = %q, want %q", got, want)
	}
	if _, err := w.Write(make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestWriterMatchesFixtureHeader rewrites the header of a real file produced by
// the reference writer (safetensors 0.8.0) and expects identical bytes.
func TestWriterMatchesFixtureHeader(t *testing.T) {
	path := testfixtures.Path("edge", "mixed.safetensors")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	names, entries, meta, data := writeTestParse(t, file)
	var tensors []WriteTensor
	for _, n := range names {
		d, err := tensor.ParseDType(entries[n].DType)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, WriteTensor{Name: n, DType: d, Shape: entries[n].Shape})
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, tensors, meta)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), file) {
		t.Errorf("rewritten %s differs from the reference writer's bytes:\n got %q\nwant %q", path, buf.Bytes()[:min(buf.Len(), 400)], file[:min(len(file), 400)])
	}
}

func TestWriterCountsBytes(t *testing.T) {
	tensors := []WriteTensor{{Name: "x", DType: tensor.BF16, Shape: []int64{4}}}
	t.Run("too many", func(t *testing.T) {
		w, err := NewWriter(&bytes.Buffer{}, tensors, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, 6)); err != nil {
			t.Fatal(err)
		}
		if n, err := w.Write(make([]byte, 3)); err == nil || n != 0 {
			t.Errorf("Write past the declared size = %d, %v; want 0 and an error", n, err)
		}
		if _, err := w.Write(make([]byte, 2)); err != nil {
			t.Errorf("Write of the last 2 bytes after a refused write: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close after exactly 8 bytes: %v", err)
		}
	})
	t.Run("too few", func(t *testing.T) {
		w, err := NewWriter(&bytes.Buffer{}, tensors, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, 7)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), "7 data bytes written, header declares 8") {
			t.Errorf("Close = %v, want a short-write error", err)
		}
	})
}

func TestWriterRejects(t *testing.T) {
	cases := []struct {
		name    string
		tensors []WriteTensor
		meta    map[string]string
		want    string
	}{
		{"empty name", []WriteTensor{{Name: "", DType: tensor.F32, Shape: []int64{1}}}, nil, "empty name"},
		{"duplicate", []WriteTensor{{Name: "a", DType: tensor.F32}, {Name: "a", DType: tensor.F32}}, nil, `"a": declared twice`},
		{"metadata name", []WriteTensor{{Name: "__metadata__", DType: tensor.F32}}, nil, "__metadata__"},
		{"invalid dtype", []WriteTensor{{Name: "a", DType: tensor.Invalid, Shape: []int64{1}}}, nil, "invalid dtype"},
		{"unknown dtype", []WriteTensor{{Name: "a", DType: tensor.DType(200), Shape: []int64{1}}}, nil, "invalid dtype"},
		{"negative dim", []WriteTensor{{Name: "a", DType: tensor.F32, Shape: []int64{2, -1}}}, nil, "negative"},
		{"element overflow", []WriteTensor{{Name: "a", DType: tensor.U8, Shape: []int64{math.MaxInt64 / 2, 3}}}, nil, "overflows"},
		{"bit overflow", []WriteTensor{{Name: "a", DType: tensor.F64, Shape: []int64{math.MaxInt64 / 4}}}, nil, "overflows"},
		{"total overflow", func() []WriteTensor {
			// Each tensor alone fits (MaxInt64/8 elements of 8 bits); ten together do not.
			var ts []WriteTensor
			for i := range 10 {
				ts = append(ts, WriteTensor{Name: string(rune('a' + i)), DType: tensor.U8, Shape: []int64{math.MaxInt64/8 - 1}})
			}
			return ts
		}(), nil, "total data size overflows"},
		{"partial byte", []WriteTensor{{Name: "a", DType: tensor.F4, Shape: []int64{3}}}, nil, "whole bytes"},
		{"bad utf8 name", []WriteTensor{{Name: "a\xff", DType: tensor.F32}}, nil, "UTF-8"},
		{"bad utf8 metadata", nil, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := NewWriter(&buf, c.tensors, c.meta)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("NewWriter error = %v, want one containing %q", err, c.want)
			}
			if buf.Len() != 0 {
				t.Errorf("%d bytes written despite the error", buf.Len())
			}
		})
	}
	if _, err := DataSize([]WriteTensor{{Name: "n", DType: tensor.F32, Shape: []int64{-3}}}); err == nil || !strings.Contains(err.Error(), `"n"`) {
		t.Errorf("DataSize with a negative dim = %v, want an error naming the tensor", err)
	}
}

// TestWriterReadHeaderAgree checks that this package's parser accepts every file
// the writer produces and sees the same tensors, in order, with the same sizes.
func TestWriterReadHeaderAgree(t *testing.T) {
	tensors := []WriteTensor{
		{Name: "w", DType: tensor.BF16, Shape: []int64{5, 3}},
		{Name: "s", DType: tensor.F64, Shape: []int64{}},
		{Name: "z", DType: tensor.F32, Shape: []int64{0}},
		{Name: "v", DType: tensor.F32, Shape: []int64{7}},
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, tensors, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, w.DataSize())); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "mem.safetensors", 0, 100)
	if err != nil {
		t.Fatalf("ReadHeader rejects the writer's output: %v", err)
	}
	if h.DataOffset != w.HeaderSize() {
		t.Errorf("DataOffset %d, writer HeaderSize %d", h.DataOffset, w.HeaderSize())
	}
	if h.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v", h.Metadata)
	}
	got := map[string]Entry{}
	for _, e := range h.Entries {
		got[e.Name] = e
	}
	var off int64
	for _, tt := range tensors {
		e, ok := got[tt.Name]
		if !ok {
			t.Fatalf("tensor %q missing", tt.Name)
		}
		n, _ := WriteTensorBytes(tt.DType, tt.Shape)
		if e.DType != tt.DType || len(e.Shape) != len(tt.Shape) || e.Begin != off || e.End != off+n {
			t.Errorf("%s: got %v %v [%d,%d), want %v %v [%d,%d)", tt.Name, e.DType, e.Shape, e.Begin, e.End, tt.DType, tt.Shape, off, off+n)
		}
		off += n
	}
}
