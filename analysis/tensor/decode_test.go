// The tests live in package tensor_test so they can read the fixtures with the
// safetensors parser, which itself imports package tensor.
package tensor_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

// fixturesDir is the repository's testdata/fixtures folder.
func fixturesDir(testing.TB) string { return testfixtures.Dir() }

// fixtureTensor returns the header entry and raw bytes of one tensor of a fixture.
func fixtureTensor(tb testing.TB, file, name string) (safetensors.Entry, []byte) {
	tb.Helper()
	path := filepath.Join(fixturesDir(tb), "edge", file)
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 8 {
		tb.Fatalf("%s: too short", path)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		tb.Fatalf("%s: bad header length", path)
	}
	h, err := safetensors.ParseHeader(b[8:8+n], int64(len(b)), path, 0)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range h.Entries {
		if e.Name == name {
			return e, b[h.DataOffset+e.Begin : h.DataOffset+e.End]
		}
	}
	tb.Fatalf("%s: no tensor %q", path, name)
	return safetensors.Entry{}, nil
}

func decode64(tb testing.TB, dt tensor.DType, n int64, raw []byte) []float64 {
	tb.Helper()
	out := make([]float64, n)
	if err := tensor.DecodeFloat64(dt, out, raw); err != nil {
		tb.Fatalf("DecodeFloat64(%s): %v", dt, err)
	}
	// The float32 path must agree exactly: every narrow float is a float32.
	out32 := make([]float32, n)
	if err := tensor.DecodeFloat32(dt, out32, raw); err != nil {
		tb.Fatalf("DecodeFloat32(%s): %v", dt, err)
	}
	for i := range out {
		if dt != tensor.F64 && !sameFloat(float64(out32[i]), out[i]) {
			tb.Fatalf("%s element %d: float32 path %v, float64 path %v", dt, i, out32[i], out[i])
		}
	}
	return out
}

// sameFloat is equality that also holds for NaN == NaN and tells -0 from +0.
func sameFloat(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b && math.Signbit(a) == math.Signbit(b)
}

func frobenius(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}

// --- independent reference formulas -------------------------------------------
//
// These spell each format out with math.Pow and explicit special cases, so they
// share no code with the decoder's tables.

// refSpec describes a format for refValue.
type refSpec struct {
	exp, man, bias int
	special        string // "ieee", "fn" (all-ones code NaN), "fnuz" (0x80 NaN), "none", "e8m0"
}

func refValue(s refSpec, code int) float64 {
	if s.special == "e8m0" {
		if code == 0xFF {
			return math.NaN()
		}
		return math.Pow(2, float64(code-127))
	}
	signBit := 1 << (s.exp + s.man)
	sign := 1.0
	if code&signBit != 0 {
		sign = -1
	}
	mag := code &^ signBit
	e := mag >> s.man
	m := mag & (1<<s.man - 1)
	eMax := 1<<s.exp - 1
	switch s.special {
	case "ieee":
		if e == eMax && m == 0 {
			return math.Inf(int(sign))
		}
		if e == eMax {
			return math.NaN()
		}
	case "fn":
		if mag == signBit-1 {
			return math.NaN()
		}
	case "fnuz":
		if code == signBit {
			return math.NaN()
		}
	}
	frac := float64(m) / math.Pow(2, float64(s.man))
	if e == 0 {
		return sign * frac * math.Pow(2, float64(1-s.bias))
	}
	return sign * (1 + frac) * math.Pow(2, float64(e-s.bias))
}

var (
	refF16      = refSpec{5, 10, 15, "ieee"}
	refE4M3     = refSpec{4, 3, 7, "fn"}
	refE5M2     = refSpec{5, 2, 15, "ieee"}
	refE4M3FNUZ = refSpec{4, 3, 8, "fnuz"}
	refE5M2FNUZ = refSpec{5, 2, 16, "fnuz"}
	refE8M0     = refSpec{8, 0, 127, "e8m0"}
	refE2M1     = refSpec{2, 1, 1, "none"}
	refE2M3     = refSpec{2, 3, 1, "none"}
	refE3M2     = refSpec{3, 2, 3, "none"}
)

// nearest rounds x to the nearest finite value of a format, ties to the code
// with an even mantissa, by searching every finite code. Values beyond the
// largest finite value are not expected in the fixtures and fail the test.
type codeValue struct {
	v    float64
	code int
}

func finiteCodes(n int, value func(int) float64) []codeValue {
	var cs []codeValue
	for c := 0; c < n; c++ {
		v := value(c)
		if math.IsNaN(v) || math.IsInf(v, 0) || (v == 0 && math.Signbit(v)) {
			continue
		}
		cs = append(cs, codeValue{v, c})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].v < cs[j].v })
	return cs
}

func nearest(tb testing.TB, cs []codeValue, x float64) float64 {
	tb.Helper()
	if x < cs[0].v || x > cs[len(cs)-1].v {
		tb.Fatalf("%v outside the format's finite range", x)
	}
	i := sort.Search(len(cs), func(i int) bool { return cs[i].v >= x })
	if cs[i].v == x || i == 0 {
		return cs[i].v
	}
	lo, hi := cs[i-1], cs[i]
	switch dl, dh := x-lo.v, hi.v-x; {
	case dl < dh:
		return lo.v
	case dh < dl:
		return hi.v
	case lo.code&1 == 0:
		return lo.v
	default:
		return hi.v
	}
}

// --- fixtures -----------------------------------------------------------------

type edgeReference struct {
	F64Fro  float64 `json:"edge_w_f64_fro"`
	BF16Fro float64 `json:"edge_w_bf16_fro"`
	F16Fro  float64 `json:"edge_w_f16_fro"`
}

func loadEdgeReference(tb testing.TB) edgeReference {
	raw, err := os.ReadFile(filepath.Join(fixturesDir(tb), "pi05", "reference.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var ref struct {
		Edge edgeReference `json:"edge"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		tb.Fatal(err)
	}
	if ref.Edge.F64Fro == 0 || ref.Edge.BF16Fro == 0 || ref.Edge.F16Fro == 0 {
		tb.Fatalf("reference.json edge norms missing: %+v", ref.Edge)
	}
	return ref.Edge
}

func checkRel(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12*math.Abs(want) {
		t.Errorf("%s = %.17g, want %.17g", what, got, want)
	}
}

func TestDecodeEdgeFixtures(t *testing.T) {
	ref := loadEdgeReference(t)
	e64, raw64 := fixtureTensor(t, "f64.safetensors", "w")
	n := e64.Elements()
	if n != 960 {
		t.Fatalf("f64 w has %d elements", n)
	}
	w := decode64(t, tensor.F64, n, raw64)
	for i := range w {
		if bits := binary.LittleEndian.Uint64(raw64[8*i:]); math.Float64bits(w[i]) != bits {
			t.Fatalf("F64 element %d not decoded bit-exactly", i)
		}
	}
	checkRel(t, "F64 Frobenius norm", frobenius(w), ref.F64Fro)

	t.Run("F32", func(t *testing.T) {
		_, raw := fixtureTensor(t, "f32.safetensors", "w")
		got := decode64(t, tensor.F32, n, raw)
		got32 := make([]float32, n)
		if err := tensor.DecodeFloat32(tensor.F32, got32, raw); err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if got32[i] != float32(w[i]) || got[i] != float64(float32(w[i])) {
				t.Fatalf("element %d: %v, want float32(%v)", i, got32[i], w[i])
			}
		}
		// F64 → float32 rounds like Go's conversion.
		w32 := make([]float32, n)
		if err := tensor.DecodeFloat32(tensor.F64, w32, raw64); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(w32, got32) {
			t.Error("DecodeFloat32(F64) differs from the F32 fixture")
		}
	})
	t.Run("BF16", func(t *testing.T) {
		_, raw := fixtureTensor(t, "bf16.safetensors", "w")
		got := decode64(t, tensor.BF16, n, raw)
		checkRel(t, "BF16 Frobenius norm", frobenius(got), ref.BF16Fro)
		codes := finiteCodes(1<<16, func(c int) float64 { return float64(math.Float32frombits(uint32(c) << 16)) })
		for i := range w {
			if want := nearest(t, codes, w[i]); got[i] != want {
				t.Fatalf("element %d: %v, nearest BF16 of %v is %v", i, got[i], w[i], want)
			}
		}
	})
	t.Run("F16", func(t *testing.T) {
		_, raw := fixtureTensor(t, "f16.safetensors", "w")
		got := decode64(t, tensor.F16, n, raw)
		checkRel(t, "F16 Frobenius norm", frobenius(got), ref.F16Fro)
		codes := finiteCodes(1<<16, func(c int) float64 { return refValue(refF16, c) })
		for i := range w {
			if want := nearest(t, codes, w[i]); got[i] != want {
				t.Fatalf("element %d: %v, nearest F16 of %v is %v", i, got[i], w[i], want)
			}
		}
	})
	for _, tc := range []struct {
		name string
		dt   tensor.DType
		spec refSpec
	}{{"w", tensor.F8_E4M3, refE4M3}, {"w5", tensor.F8_E5M2, refE5M2}} {
		t.Run(tc.dt.String(), func(t *testing.T) {
			e, raw := fixtureTensor(t, "f8.safetensors", tc.name)
			if e.DType != tc.dt {
				t.Fatalf("fixture %q is %s", tc.name, e.DType)
			}
			got := decode64(t, tc.dt, n, raw)
			codes := finiteCodes(256, func(c int) float64 { return refValue(tc.spec, c) })
			distinct := make(map[float64]bool)
			for i := range w {
				if want := nearest(t, codes, w[i]); got[i] != want {
					t.Fatalf("element %d: %v, nearest %s of %v is %v", i, got[i], tc.dt, w[i], want)
				}
				distinct[got[i]] = true
			}
			if len(distinct) < 20 {
				t.Errorf("only %d distinct values: fixture or decoder degenerate", len(distinct))
			}
		})
	}
}

func TestDecodeMixedFixture(t *testing.T) {
	_, f16raw := fixtureTensor(t, "f16.safetensors", "w")
	wantA := decode64(t, tensor.F16, 960, f16raw)
	tests := []struct {
		name string
		want []float64 // nil: check only that it decodes to n finite values
	}{
		{"b", []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"c", []float64{3.5}},
		{"empty", []float64{}},
		{"a", wantA},
		{"u8", []float64{0, 1, 2, 3, 4, 5, 6}},
		{"flag", []float64{1, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, raw := fixtureTensor(t, "mixed.safetensors", tt.name)
			if e.Elements() != int64(len(tt.want)) {
				t.Fatalf("%s %v has %d elements, want %d", e.DType, e.Shape, e.Elements(), len(tt.want))
			}
			got := decode64(t, e.DType, e.Elements(), raw)
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s decoded to %v, want %v", e.DType, got, tt.want)
			}
		})
	}
}

// --- exhaustive checks of the narrow formats ------------------------------------

func TestDecodeEveryCode(t *testing.T) {
	tests := []struct {
		dt   tensor.DType
		spec refSpec
		nan  int // how many codes are NaN
	}{
		{tensor.F8_E4M3, refE4M3, 2},
		{tensor.F8_E5M2, refE5M2, 6},
		{tensor.F8_E8M0, refE8M0, 1},
		{tensor.F8_E4M3FNUZ, refE4M3FNUZ, 1},
		{tensor.F8_E5M2FNUZ, refE5M2FNUZ, 1},
	}
	for _, tt := range tests {
		t.Run(tt.dt.String(), func(t *testing.T) {
			raw := make([]byte, 256)
			for i := range raw {
				raw[i] = byte(i)
			}
			got := decode64(t, tt.dt, 256, raw)
			nans := 0
			for c, v := range got {
				if want := refValue(tt.spec, c); !sameFloat(v, want) {
					t.Errorf("code %#02x = %v, want %v", c, v, want)
				}
				if math.IsNaN(v) {
					nans++
				}
			}
			if nans != tt.nan {
				t.Errorf("%d NaN codes, want %d", nans, tt.nan)
			}
		})
	}
	t.Run("F16", func(t *testing.T) {
		raw := make([]byte, 2<<16)
		for c := range 1 << 16 {
			binary.LittleEndian.PutUint16(raw[2*c:], uint16(c))
		}
		got := decode64(t, tensor.F16, 1<<16, raw)
		for c, v := range got {
			if want := refValue(refF16, c); !sameFloat(v, want) {
				t.Fatalf("code %#04x = %v, want %v", c, v, want)
			}
		}
	})
	t.Run("BF16", func(t *testing.T) {
		raw := make([]byte, 2<<16)
		for c := range 1 << 16 {
			binary.LittleEndian.PutUint16(raw[2*c:], uint16(c))
		}
		got := decode64(t, tensor.BF16, 1<<16, raw)
		for c, v := range got {
			// BF16 is F32 with 16 fewer mantissa bits: the same fields, bias 127.
			if want := refValue(refSpec{8, 7, 127, "ieee"}, c); !sameFloat(v, want) {
				t.Fatalf("code %#04x = %v, want %v", c, v, want)
			}
		}
	})
}

// Special values named by the format specifications.
func TestDecodeSpecialValues(t *testing.T) {
	inf, nan := math.Inf(1), math.NaN()
	negZero := math.Copysign(0, -1)
	tests := []struct {
		dt   tensor.DType
		raw  []byte
		want []float64
	}{
		// E4M3 "fn": max 448, min normal 2^-6, min subnormal 2^-9, S.1111.111 NaN, no inf.
		{tensor.F8_E4M3, []byte{0x00, 0x80, 0x7E, 0xFE, 0x7F, 0xFF, 0x08, 0x01, 0x78, 0x38}, []float64{0, negZero, 448, -448, nan, nan, 0x1p-6, 0x1p-9, 256, 1}},
		// E5M2: max 57344, ±inf, NaN, min subnormal 2^-16.
		{tensor.F8_E5M2, []byte{0x7B, 0xFB, 0x7C, 0xFC, 0x7D, 0x7E, 0x7F, 0x01, 0x04, 0x3C, 0x80}, []float64{57344, -57344, inf, -inf, nan, nan, nan, 0x1p-16, 0x1p-14, 1, negZero}},
		// E8M0: a pure power of two, 0xFF NaN, no zero, no sign.
		{tensor.F8_E8M0, []byte{0x7F, 0x00, 0xFE, 0xFF, 0x80}, []float64{1, 0x1p-127, 0x1p127, nan, 2}},
		// E4M3FNUZ: bias 8, 0x80 NaN (no -0), max 240, min subnormal 2^-10.
		{tensor.F8_E4M3FNUZ, []byte{0x00, 0x80, 0x7F, 0xFF, 0x01, 0x40}, []float64{0, nan, 240, -240, 0x1p-10, 1}},
		// E5M2FNUZ: bias 16, 0x80 NaN, max 57344, no inf, min subnormal 2^-17.
		{tensor.F8_E5M2FNUZ, []byte{0x00, 0x80, 0x7F, 0xFF, 0x7C, 0x01, 0x40}, []float64{0, nan, 57344, -57344, 32768, 0x1p-17, 1}},
		// F16: max 65504, min subnormal 2^-24, ±inf, NaN, -0.
		{tensor.F16, []byte{0x00, 0x3C, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0x7C, 0x00, 0xFC, 0x00, 0x7E, 0x00, 0x80}, []float64{1, 65504, 0x1p-24, inf, -inf, nan, negZero}},
		// BF16: a shifted float32.
		{tensor.BF16, []byte{0x80, 0x3F, 0x80, 0x7F, 0xC0, 0x7F, 0x80, 0xBF, 0x01, 0x00}, []float64{1, inf, nan, -1, float64(math.Float32frombits(1 << 16))}},
		// F4 E2M1, two per byte, low nibble first: 0x21 = [0.5, 1]; 0xF7 = [6, -6]; 0x98 = [-0, -0.5].
		{tensor.F4, []byte{0x21, 0xF7, 0x98, 0x43}, []float64{0.5, 1, 6, -6, negZero, -0.5, 1.5, 2}},
		// Integers and BOOL.
		{tensor.I8, []byte{0x80, 0xFF, 0x7F}, []float64{-128, -1, 127}},
		{tensor.U8, []byte{0xFF, 0x00}, []float64{255, 0}},
		{tensor.I16, []byte{0xFE, 0xFF, 0x00, 0x80}, []float64{-2, -32768}},
		{tensor.U16, []byte{0xFF, 0xFF}, []float64{65535}},
		{tensor.I32, []byte{0xFB, 0xFF, 0xFF, 0xFF}, []float64{-5}},
		{tensor.U32, []byte{0x00, 0x28, 0x6B, 0xEE}, []float64{4e9}},
		{tensor.I64, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80}, []float64{-1, -0x1p63}},
		{tensor.U64, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, []float64{0x1p64}},
		{tensor.BOOL, []byte{0, 1, 2, 0xFF}, []float64{0, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.dt.String(), func(t *testing.T) {
			got := decode64(t, tt.dt, int64(len(tt.want)), tt.raw)
			for i := range got {
				if !sameFloat(got[i], tt.want[i]) {
					t.Errorf("element %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDecodeSubByteCodes(t *testing.T) {
	f4 := []float64{0, 0.5, 1, 1.5, 2, 3, 4, 6}
	t.Run("F4 every byte", func(t *testing.T) {
		raw := make([]byte, 256)
		for i := range raw {
			raw[i] = byte(i)
		}
		got := decode64(t, tensor.F4, 512, raw)
		for b := range 256 {
			for half, nib := range []int{b & 15, b >> 4} {
				want := f4[nib&7]
				if nib&8 != 0 {
					want = -want
				}
				if v := got[2*b+half]; !sameFloat(v, want) || !sameFloat(v, refValue(refE2M1, nib)) {
					t.Fatalf("byte %#02x nibble %d = %v, want %v", b, half, v, want)
				}
			}
		}
	})
	for _, tc := range []struct {
		dt       tensor.DType
		spec     refSpec
		max, sub float64
	}{{tensor.F6_E2M3, refE2M3, 7.5, 0.125}, {tensor.F6_E3M2, refE3M2, 28, 0.0625}} {
		t.Run(tc.dt.String(), func(t *testing.T) {
			// All 64 codes, four per 24-bit little-endian word, from bit 0 up.
			raw := make([]byte, 48)
			for g := range 16 {
				var w uint32
				for j := range 4 {
					w |= uint32(4*g+j) << (6 * j)
				}
				raw[3*g], raw[3*g+1], raw[3*g+2] = byte(w), byte(w>>8), byte(w>>16)
			}
			got := decode64(t, tc.dt, 64, raw)
			for c, v := range got {
				if want := refValue(tc.spec, c); !sameFloat(v, want) {
					t.Errorf("code %#02x = %v, want %v", c, v, want)
				}
			}
			if got[0x1F] != tc.max || got[0x3F] != -tc.max || got[0x01] != tc.sub || !math.Signbit(got[0x20]) {
				t.Errorf("max %v/%v, min subnormal %v, -0 %v", got[0x1F], got[0x3F], got[0x01], got[0x20])
			}
			// The bit order on a known pattern: codes 1, 2, 3, 4 pack to 0x81 0x30 0x10
			// (w = 1 | 2<<6 | 3<<12 | 4<<18 = 0x103081).
			four := decode64(t, tc.dt, 4, []byte{0x81, 0x30, 0x10})
			for j, c := range []int{1, 2, 3, 4} {
				if four[j] != refValue(tc.spec, c) {
					t.Errorf("packed element %d = %v, want code %d = %v", j, four[j], c, refValue(tc.spec, c))
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		dt   tensor.DType
		n    int
		raw  []byte
		want string
	}{
		{"complex", tensor.C64, 1, make([]byte, 8), "complex dtype cannot be decoded to real"},
		{"too few bytes", tensor.F32, 3, make([]byte, 11), "need 12 bytes, got 11"},
		{"too many bytes", tensor.BF16, 1, make([]byte, 3), "need 2 bytes, got 3"},
		{"F4 odd count", tensor.F4, 3, make([]byte, 2), "packs 2 elements"},
		{"F6 count not a multiple of 4", tensor.F6_E2M3, 2, make([]byte, 2), "packs 4 elements per 3 bytes"},
		{"invalid dtype", tensor.Invalid, 1, make([]byte, 1), "cannot decode"},
		{"out of range dtype", tensor.DType(200), 1, make([]byte, 1), "cannot decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err64 := tensor.DecodeFloat64(tt.dt, make([]float64, tt.n), tt.raw)
			err32 := tensor.DecodeFloat32(tt.dt, make([]float32, tt.n), tt.raw)
			for _, err := range []error{err64, err32} {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("got %v, want an error containing %q", err, tt.want)
				}
			}
			if tt.dt == tensor.C64 && !errors.Is(err64, tensor.ErrComplex) {
				t.Errorf("C64 error %v is not ErrComplex", err64)
			}
		})
	}
	// Empty input is fine for every dtype but C64.
	if err := tensor.DecodeFloat32(tensor.F4, nil, nil); err != nil {
		t.Errorf("empty F4: %v", err)
	}
}

// --- benchmarks ---------------------------------------------------------------

func benchDecode32(b *testing.B, dt tensor.DType) {
	const n = 1 << 20
	raw := make([]byte, n*dt.Bits()/8)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	dst := make([]float32, n)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := tensor.DecodeFloat32(dt, dst, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeFloat32BF16(b *testing.B) { benchDecode32(b, tensor.BF16) }
func BenchmarkDecodeFloat32F32(b *testing.B)  { benchDecode32(b, tensor.F32) }
func BenchmarkDecodeFloat32F16(b *testing.B)  { benchDecode32(b, tensor.F16) }
func BenchmarkDecodeFloat32F8(b *testing.B)   { benchDecode32(b, tensor.F8_E4M3) }
func BenchmarkDecodeFloat32F4(b *testing.B)   { benchDecode32(b, tensor.F4) }

func BenchmarkDecodeFloat64BF16(b *testing.B) {
	const n = 1 << 20
	raw := make([]byte, 2*n)
	dst := make([]float64, n)
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := tensor.DecodeFloat64(tensor.BF16, dst, raw); err != nil {
			b.Fatal(err)
		}
	}
}
