package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// fixturesDir is the repository's testdata/fixtures folder.
func fixturesDir(testing.TB) string { return testfixtures.Dir() }

func readHeaderFile(tb testing.TB, path string) *safetensors.Header {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	h, err := safetensors.ReadHeader(f, st.Size(), path, 0, 0)
	if err != nil {
		tb.Fatalf("ReadHeader(%s): %v", path, err)
	}
	return h
}

// checkInvariants asserts what an accepted header promises its users.
func checkInvariants(tb testing.TB, h *safetensors.Header, hdrLen, fileSize int64) {
	tb.Helper()
	if h.HeaderLen != hdrLen || h.DataOffset != 8+hdrLen {
		tb.Fatalf("HeaderLen %d DataOffset %d, want %d and %d", h.HeaderLen, h.DataOffset, hdrLen, 8+hdrLen)
	}
	var pos int64
	names := make(map[string]bool)
	for i, e := range h.Entries {
		if names[e.Name] {
			tb.Fatalf("duplicate name %q accepted", e.Name)
		}
		names[e.Name] = true
		if e.Begin != pos {
			tb.Fatalf("entry %d %q begins at %d, want %d", i, e.Name, e.Begin, pos)
		}
		if e.End < e.Begin {
			tb.Fatalf("entry %q end %d < begin %d", e.Name, e.End, e.Begin)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				tb.Fatalf("entry %q negative dim", e.Name)
			}
			elems *= d
		}
		if elems != e.Elements() || elems*e.DType.Bits() != 8*e.Bytes() {
			tb.Fatalf("entry %q: %s %v in %d bytes", e.Name, e.DType, e.Shape, e.Bytes())
		}
		pos = e.End
	}
	if pos != fileSize-8-hdrLen {
		tb.Fatalf("entries end at %d, data section is %d bytes", pos, fileSize-8-hdrLen)
	}
}

func TestReadHeaderPi05Fixtures(t *testing.T) {
	fx := fixturesDir(t)
	var ref struct {
		Pairs []struct {
			Base      string  `json:"base"`
			VLA       string  `json:"vla"`
			ShapeBase []int64 `json:"shape_base"`
			ShapeVLA  []int64 `json:"shape_vla"`
			DTypeBase string  `json:"dtype_base"`
			DTypeVLA  string  `json:"dtype_vla"`
		} `json:"pairs"`
		VLAOnly []string `json:"vla_only"`
	}
	raw, err := os.ReadFile(filepath.Join(fx, "pi05", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Pairs) == 0 {
		t.Fatal("reference.json has no pairs")
	}

	collect := func(paths ...string) map[string]safetensors.Entry {
		all := make(map[string]safetensors.Entry)
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			h := readHeaderFile(t, p)
			checkInvariants(t, h, h.HeaderLen, st.Size())
			for _, e := range h.Entries {
				if _, dup := all[e.Name]; dup {
					t.Fatalf("%s: %q also in another shard", p, e.Name)
				}
				all[e.Name] = e
			}
		}
		return all
	}
	shards, err := filepath.Glob(filepath.Join(fx, "pi05", "base", "*.safetensors"))
	if err != nil || len(shards) != 4 {
		t.Fatalf("base shards: %v %v", shards, err)
	}
	base := collect(shards...)
	vla := collect(filepath.Join(fx, "pi05", "vla", "model.safetensors"))

	torchDType := map[string]tensor.DType{"torch.float32": tensor.F32, "torch.bfloat16": tensor.BF16}
	for i, p := range ref.Pairs {
		dtBase, dtVLA := torchDType[p.DTypeBase], torchDType[p.DTypeVLA]
		if dtBase == tensor.Invalid || dtVLA == tensor.Invalid {
			t.Fatalf("pair %d: unexpected dtypes %q %q", i, p.DTypeBase, p.DTypeVLA)
		}
		b, ok := base[p.Base]
		if !ok {
			t.Errorf("base lacks %q", p.Base)
			continue
		}
		v, ok := vla[p.VLA]
		if !ok {
			t.Errorf("vla lacks %q", p.VLA)
			continue
		}
		if b.DType != dtBase || !slices.Equal(b.Shape, p.ShapeBase) {
			t.Errorf("base %q: %s %v, want %s %v", p.Base, b.DType, b.Shape, dtBase, p.ShapeBase)
		}
		if v.DType != dtVLA || !slices.Equal(v.Shape, p.ShapeVLA) {
			t.Errorf("vla %q: %s %v, want %s %v", p.VLA, v.DType, v.Shape, dtVLA, p.ShapeVLA)
		}
	}
	if len(ref.VLAOnly) == 0 {
		t.Fatal("reference lists no vla_only tensors")
	}
	for _, name := range ref.VLAOnly {
		if _, ok := vla[name]; !ok {
			t.Errorf("vla lacks vla_only tensor %q", name)
		}
	}
	if got, want := len(vla), len(ref.Pairs)+len(ref.VLAOnly); got != want {
		t.Errorf("vla has %d tensors, reference accounts for %d", got, want)
	}
}

func TestReadHeaderEdgeFixtures(t *testing.T) {
	fx := fixturesDir(t)
	wantMeta := map[string]string{"format": "pt", "note": "edge case"}
	w := []int64{24, 40}
	tests := []struct {
		file string
		want []safetensors.Entry // in offset order
	}{
		{"f64.safetensors", []safetensors.Entry{{Name: "w", DType: tensor.F64, Shape: w, Begin: 0, End: 7680}}},
		{"f32.safetensors", []safetensors.Entry{{Name: "w", DType: tensor.F32, Shape: w, Begin: 0, End: 3840}}},
		{"bf16.safetensors", []safetensors.Entry{{Name: "w", DType: tensor.BF16, Shape: w, Begin: 0, End: 1920}}},
		{"f16.safetensors", []safetensors.Entry{{Name: "w", DType: tensor.F16, Shape: w, Begin: 0, End: 1920}}},
		{"f8.safetensors", []safetensors.Entry{
			{Name: "w", DType: tensor.F8_E4M3, Shape: w, Begin: 0, End: 960},
			{Name: "w5", DType: tensor.F8_E5M2, Shape: w, Begin: 960, End: 1920},
		}},
		// Listed out of offset order in the file, with an empty tensor sharing
		// its offset with the next one.
		{"mixed.safetensors", []safetensors.Entry{
			{Name: "b", DType: tensor.I64, Shape: []int64{10}, Begin: 0, End: 80},
			{Name: "c", DType: tensor.F32, Shape: []int64{}, Begin: 80, End: 84},
			{Name: "empty", DType: tensor.F32, Shape: []int64{0, 8}, Begin: 84, End: 84},
			{Name: "a", DType: tensor.F16, Shape: w, Begin: 84, End: 2004},
			{Name: "u8", DType: tensor.U8, Shape: []int64{7}, Begin: 2004, End: 2011},
			{Name: "flag", DType: tensor.BOOL, Shape: []int64{3}, Begin: 2011, End: 2014},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join(fx, "edge", tt.file)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			h := readHeaderFile(t, path)
			checkInvariants(t, h, h.HeaderLen, st.Size())
			if len(h.Metadata) != len(wantMeta) {
				t.Errorf("metadata %v, want %v", h.Metadata, wantMeta)
			}
			for k, v := range wantMeta {
				if h.Metadata[k] != v {
					t.Errorf("metadata[%q] = %q, want %q", k, h.Metadata[k], v)
				}
			}
			if len(h.Entries) != len(tt.want) {
				t.Fatalf("got %d entries, want %d", len(h.Entries), len(tt.want))
			}
			for i, want := range tt.want {
				got := h.Entries[i]
				if got.Name != want.Name || got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) ||
					got.Begin != want.Begin || got.End != want.End {
					t.Errorf("entry %d = %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

// stFile builds a safetensors file from a header string and a data section of
// dataLen zero bytes.
func stFile(header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

// withLength builds a file whose length field says n whatever follows.
func withLength(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

// guardedReaderAt fails the test if asked for more than 64 KiB in one read, or
// more than the whole file when it is larger: the parser must check lengths
// before reading (and allocating) for them.
type guardedReaderAt struct {
	tb   testing.TB
	data []byte
}

func (g guardedReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > max(64<<10, len(g.data)) {
		g.tb.Fatalf("ReadAt asked for %d bytes at once from a %d-byte file", len(p), len(g.data))
	}
	return bytes.NewReader(g.data).ReadAt(p, off)
}

func TestReadHeaderValid(t *testing.T) {
	tests := []struct {
		name    string
		file    []byte
		entries []string // names in offset order
	}{
		{"empty header object", stFile("{}", 0), nil},
		{"space padding", stFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}      `, 2), []string{"a"}},
		{"leading and trailing whitespace", stFile(" \n{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}\t\r\n ", 2), []string{"a"}},
		{"null metadata", stFile(`{"__metadata__":null}`, 0), nil},
		{"empty metadata", stFile(`{"__metadata__":{}}`, 0), nil},
		{"scalar", stFile(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, 8), []string{"s"}},
		{"zero-size first, middle and last", stFile(`{"z3":{"dtype":"F32","shape":[4,0],"data_offsets":[6,6]},`+
			`"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"z1":{"dtype":"I64","shape":[0],"data_offsets":[0,0]},`+
			`"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"z2":{"dtype":"BF16","shape":[0,3],"data_offsets":[4,4]}}`, 6),
			[]string{"z1", "a", "z2", "b", "z3"}},
		{"listed out of order", stFile(`{"b":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}}`, 8), []string{"a", "b"}},
		{"F4 pairs", stFile(`{"q":{"dtype":"F4","shape":[3,2],"data_offsets":[0,3]}}`, 3), []string{"q"}},
		{"F6 groups of four", stFile(`{"q":{"dtype":"F6_E3M2","shape":[8],"data_offsets":[0,6]}}`, 6), []string{"q"}},
		{"every dtype name", stFile(`{"c":{"dtype":"C64","shape":[1],"data_offsets":[0,8]},"e":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[8,9]},`+
			`"f":{"dtype":"F8_E4M3FNUZ","shape":[1],"data_offsets":[9,10]},"g":{"dtype":"F8_E5M2FNUZ","shape":[1],"data_offsets":[10,11]},`+
			`"h":{"dtype":"I16","shape":[1],"data_offsets":[11,13]},"i":{"dtype":"U16","shape":[1],"data_offsets":[13,15]},`+
			`"j":{"dtype":"U64","shape":[1],"data_offsets":[15,23]},"k":{"dtype":"I8","shape":[1],"data_offsets":[23,24]},`+
			`"l":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[24,27]}}`, 27),
			[]string{"c", "e", "f", "g", "h", "i", "j", "k", "l"}},
		{"unicode names", stFile(`{"\u00e9t\u00e9":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"名前":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), []string{"été", "名前"}},
		{"huge dim times zero", stFile(`{"z":{"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]}}`, 0), []string{"z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := safetensors.ReadHeader(guardedReaderAt{t, tt.file}, int64(len(tt.file)), "ok.safetensors", 0, 0)
			if err != nil {
				t.Fatalf("ReadHeader: %v", err)
			}
			checkInvariants(t, h, h.HeaderLen, int64(len(tt.file)))
			var names []string
			for _, e := range h.Entries {
				names = append(names, e.Name)
			}
			if !slices.Equal(names, tt.entries) {
				t.Errorf("entries %q, want %q", names, tt.entries)
			}
		})
	}
}

func TestReadHeaderMalformed(t *testing.T) {
	const path = "bad.safetensors"
	f32 := func(name string, b, e int) string {
		return fmt.Sprintf(`%q:{"dtype":"F32","shape":[%d],"data_offsets":[%d,%d]}`, name, (e-b)/4, b, e)
	}
	tests := []struct {
		name       string
		file       []byte
		maxTensors int
		tensor     string   // the tensor the error must name, if any
		want       []string // words the message must contain
	}{
		{name: "empty file", file: nil, want: []string{"too short"}},
		{name: "short file", file: []byte{1, 2, 3}, want: []string{"3 bytes", "too short"}},
		{name: "header length past EOF", file: withLength(100, `{"a":1}`), want: []string{"header length 100", "past the end of the file"}},
		{name: "header length just under the cap but past EOF", file: withLength(99_999_999, `{}`), want: []string{"past the end of the file"}},
		{name: "huge header length 2^63", file: withLength(1<<63, `{}`), want: []string{"exceeds the limit"}},
		{name: "max u64 header length", file: withLength(1<<64-1, `{}`), want: []string{"exceeds the limit"}},
		{name: "zero-length header", file: withLength(0, ""), want: []string{"header is empty"}},
		{name: "blank header", file: stFile("        ", 0), want: []string{"header is empty"}},
		{name: "bad UTF-8", file: stFile("{\"a\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), want: []string{"UTF-8"}},
		{name: "not JSON", file: stFile("hello world", 0), want: []string{"not valid JSON"}},
		{name: "truncated JSON", file: stFile(`{"a":{"dtype":"F32"`, 0), want: []string{"not valid JSON", "ends in the middle"}},
		{name: "JSON array", file: stFile(`[]`, 0), want: []string{"not a JSON object", "array"}},
		{name: "JSON string", file: stFile(`"x"`, 0), want: []string{"not a JSON object"}},
		{name: "NUL padding", file: stFile("{}\x00\x00", 0), want: []string{"after the header's JSON object"}},
		{name: "two objects", file: stFile("{}{}", 0), want: []string{"after the header's JSON object"}},
		{name: "trailing comma", file: stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},}`, 1), want: []string{"not valid JSON"}},
		{name: "aliasing offsets", file: stFile("{"+f32("a", 0, 12)+","+f32("b", 0, 12)+"}", 12), tensor: "b", want: []string{"overlap", `"a"`}},
		{name: "overlapping offsets", file: stFile("{"+f32("a", 0, 8)+","+f32("b", 4, 12)+"}", 12), tensor: "b", want: []string{"overlap"}},
		{name: "zero-size tensor inside another", file: stFile(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"z":{"dtype":"U8","shape":[0],"data_offsets":[4,4]}}`, 8), tensor: "z", want: []string{"overlap", `"a"`}},
		{name: "size mismatch", file: stFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,10]}}`, 10), tensor: "a", want: []string{"data_offsets [0, 10) but F32 [3] needs 12 bytes"}},
		{name: "shape overflow", file: stFile(`{"a":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}}`, 4), tensor: "a", want: []string{"overflow"}},
		{name: "shape overflow hidden by a later zero", file: stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, 0), tensor: "a", want: []string{"overflow"}},
		{name: "byte size overflow", file: stFile(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}`, 0), tensor: "a", want: []string{"byte size", "overflow"}},
		{name: "trailing bytes", file: stFile("{"+f32("a", 0, 12)+"}", 16), want: []string{"trailing bytes", "end at 12", "16 bytes"}},
		{name: "data without tensors", file: stFile(`{}`, 3), want: []string{"trailing bytes"}},
		{name: "truncated data", file: stFile("{"+f32("a", 0, 12)+"}", 8), tensor: "a", want: []string{"truncated", "past the end"}},
		{name: "hole between tensors", file: stFile("{"+f32("a", 0, 4)+","+f32("b", 8, 12)+"}", 12), tensor: "b", want: []string{"hole", "[4, 8)"}},
		{name: "hole at the start", file: stFile("{"+f32("a", 4, 8)+"}", 8), tensor: "a", want: []string{"hole", "[0, 4)"}},
		{name: "end before begin", file: stFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}`, 8), tensor: "a", want: []string{"end before begin"}},
		{name: "negative shape", file: stFile(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, 0), tensor: "a", want: []string{"shape[0]", "negative"}},
		{name: "negative offset", file: stFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}}`, 0), tensor: "a", want: []string{"data_offsets[0]", "negative"}},
		{name: "offset beyond int64", file: stFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,18446744073709551615]}}`, 0), tensor: "a", want: []string{"too large"}},
		{name: "float in shape", file: stFile(`{"a":{"dtype":"U8","shape":[2.0],"data_offsets":[0,2]}}`, 2), tensor: "a", want: []string{"2.0", "not an integer"}},
		{name: "exponent in offsets", file: stFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2e0]}}`, 2), tensor: "a", want: []string{"not an integer"}},
		{name: "string in shape", file: stFile(`{"a":{"dtype":"U8","shape":["2"],"data_offsets":[0,2]}}`, 2), tensor: "a", want: []string{"shape[0]", "string"}},
		{name: "shape not an array", file: stFile(`{"a":{"dtype":"U8","shape":2,"data_offsets":[0,2]}}`, 2), tensor: "a", want: []string{"shape is the number 2"}},
		{name: "rank above the limit", file: stFile(`{"a":{"dtype":"U8","shape":[`+strings.Repeat("1,", 64)+`1],"data_offsets":[0,1]}}`, 1), tensor: "a", want: []string{"more than 64"}},
		{name: "three offsets", file: stFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2,4]}}`, 2), tensor: "a", want: []string{"data_offsets has more than 2"}},
		{name: "one offset", file: stFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0]}}`, 2), tensor: "a", want: []string{"data_offsets is [0]", "[begin, end]"}},
		{name: "unknown dtype", file: stFile(`{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, 16), tensor: "a", want: []string{`unknown dtype "F128"`}},
		{name: "lowercase dtype", file: stFile(`{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}`, 4), tensor: "a", want: []string{"unknown dtype"}},
		{name: "dtype not a string", file: stFile(`{"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}`, 4), tensor: "a", want: []string{"dtype is the number 7"}},
		{name: "non-string metadata value", file: stFile(`{"__metadata__":{"epoch":3}}`, 0), want: []string{"__metadata__", `"epoch"`, "must be strings"}},
		{name: "nested metadata value", file: stFile(`{"__metadata__":{"cfg":{"a":"b"}}}`, 0), want: []string{"must be strings"}},
		{name: "metadata not an object", file: stFile(`{"__metadata__":"pt"}`, 0), want: []string{"__metadata__", "must be an object"}},
		{name: "duplicate metadata key", file: stFile(`{"__metadata__":{"a":"1","a":"2"}}`, 0), want: []string{"twice"}},
		{name: "duplicate __metadata__", file: stFile(`{"__metadata__":{},"__metadata__":{}}`, 0), want: []string{"__metadata__ is given twice"}},
		{name: "duplicate names", file: stFile("{"+f32("a", 0, 4)+","+f32("a", 4, 8)+"}", 8), tensor: "a", want: []string{"duplicate name"}},
		{name: "deep nesting at the top", file: stFile(strings.Repeat("[", 100_000), 0), want: []string{"not a JSON object"}},
		{name: "deep nesting in an entry", file: stFile(`{"a":`+strings.Repeat("[", 100_000), 0), tensor: "a", want: []string{"entry is an array"}},
		{name: "deep nesting in a shape", file: stFile(`{"a":{"dtype":"U8","shape":`+strings.Repeat("[", 100_000), 0), tensor: "a", want: []string{"shape[0] is an array"}},
		{name: "deep nesting in metadata", file: stFile(`{"__metadata__":{"x":`+strings.Repeat("{\"x\":", 100_000), 0), want: []string{"must be strings"}},
		{name: "entry not an object", file: stFile(`{"a":[1,2]}`, 0), tensor: "a", want: []string{"entry is an array"}},
		{name: "missing data_offsets", file: stFile(`{"a":{"dtype":"F32","shape":[1]}}`, 4), tensor: "a", want: []string{"missing field data_offsets"}},
		{name: "missing dtype", file: stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, 4), tensor: "a", want: []string{"missing field dtype"}},
		{name: "missing shape", file: stFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, 4), tensor: "a", want: []string{"missing field shape"}},
		{name: "extra field", file: stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offsets":[0,4]}}`, 4), tensor: "a", want: []string{`unknown field "offsets"`}},
		{name: "repeated field", file: stFile(`{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4), tensor: "a", want: []string{"dtype is given twice"}},
		{name: "F4 with odd element count", file: stFile(`{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, 2), tensor: "a", want: []string{"misaligned", "F4 [3]"}},
		{name: "F6 with two elements", file: stFile(`{"a":{"dtype":"F6_E2M3","shape":[2],"data_offsets":[0,2]}}`, 2), tensor: "a", want: []string{"misaligned"}},
		{name: "too many tensors", maxTensors: 2, file: stFile("{"+f32("a", 0, 4)+","+f32("b", 4, 8)+","+f32("c", 8, 12)+"}", 12), want: []string{"more than 2 tensors"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			h, err := safetensors.ReadHeader(guardedReaderAt{t, tt.file}, int64(len(tt.file)), path, 0, tt.maxTensors)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("accepted; entries %+v", h.Entries)
			}
			// The deepest inputs are 100 kB; nothing may allocate far beyond what
			// the file itself holds (a forged length must not reach make()).
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
				t.Errorf("allocated %d bytes for a %d-byte file", grew, len(tt.file))
			}
			var te *tensor.Error
			if !errors.As(err, &te) {
				t.Fatalf("error %T %v is not a *tensor.Error", err, err)
			}
			msg := err.Error()
			t.Log(msg)
			if te.Path != path || !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file %s", msg, path)
			}
			if te.Tensor != tt.tensor {
				t.Errorf("error names tensor %q, want %q (%s)", te.Tensor, tt.tensor, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
		})
	}
}

// A reader that fails (a file that shrank after stat) gives a clear error too.
func TestReadHeaderShortRead(t *testing.T) {
	full := stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1)
	cut := full[:20]
	_, err := safetensors.ReadHeader(bytes.NewReader(cut), int64(len(full)), "gone.safetensors", 0, 0)
	var te *tensor.Error
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "reading the") || te.Path != "gone.safetensors" {
		t.Fatalf("got %v", err)
	}
}

func TestReadHeaderMaxHeaderLimit(t *testing.T) {
	file := stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}   `, 1)
	if _, err := safetensors.ReadHeader(bytes.NewReader(file), int64(len(file)), "x", 16, 0); err == nil ||
		!strings.Contains(err.Error(), "exceeds the limit of 16 bytes") {
		t.Fatalf("limit of 16 not applied: %v", err)
	}
	if _, err := safetensors.ReadHeader(bytes.NewReader(file), int64(len(file)), "x", 1<<40, 0); err != nil {
		t.Fatalf("limit above the format cap must be clamped, not fail: %v", err)
	}
}

func TestParseHeaderFileTooSmall(t *testing.T) {
	_, err := safetensors.ParseHeader([]byte(`{}`), 9, "p", 0)
	var te *tensor.Error
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "does not fit") {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkReadHeader(b *testing.B) {
	path := filepath.Join(fixturesDir(b), "pi05", "vla", "model.safetensors")
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h, err := safetensors.ReadHeader(f, st.Size(), path, 0, 0)
		if err != nil || len(h.Entries) == 0 {
			b.Fatal(err)
		}
	}
}
