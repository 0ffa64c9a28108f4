package tensor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// ErrComplex is returned when a complex tensor is asked for real values: C64 is
// compared bytewise by the engine, never decoded.
var ErrComplex = errors.New("complex dtype cannot be decoded to real")

// DecodeFloat32 decodes len(dst) little-endian elements of type dt from raw into dst.
// raw must hold exactly the bytes of those elements; for packed sub-byte types
// (F4, F6) len(dst) must be a multiple of dt.GroupElems().
//
// Every float dtype decodes exactly (all F16/BF16/F8/F6/F4 values are float32
// values); F64 and 32/64-bit integers round to nearest float32. Integers decode to
// their value and BOOL to 0 or 1 (any non-zero byte is true, as in torch).
func DecodeFloat32(dt DType, dst []float32, raw []byte) error {
	switch dt {
	case BF16, F32: // the dtypes of nearly every checkpoint: straight-line loops
		if err := checkDecodeSize(dt, len(dst), raw); err != nil {
			return err
		}
		if dt == BF16 {
			bf16ToFloat32(dst, raw)
		} else {
			f32ToFloat32(dst, raw)
		}
		return nil
	}
	return decode(dt, dst, raw)
}

// DecodeFloat64 is DecodeFloat32 into float64. Every dtype decodes exactly except
// I64/U64 beyond 2^53, which round to nearest.
func DecodeFloat64(dt DType, dst []float64, raw []byte) error {
	switch dt {
	case BF16, F32:
		if err := checkDecodeSize(dt, len(dst), raw); err != nil {
			return err
		}
		if dt == BF16 {
			bf16ToFloat64(dst, raw)
		} else {
			f32ToFloat64(dst, raw)
		}
		return nil
	}
	return decode(dt, dst, raw)
}

// The four loops below handle four elements per step through fixed-size
// sub-slices, so the compiler proves every index in range and emits no
// per-element bounds checks or branches; a short tail finishes the rest.
// BF16 is the top half of an F32: a shift is exact, with no rounding and no
// special cases (inf and NaN carry over). raw has been checked to hold exactly
// the bytes of dst.

func bf16ToFloat32(dst []float32, raw []byte) {
	for len(dst) >= 4 && len(raw) >= 8 {
		d, w := dst[:4:4], binary.LittleEndian.Uint64(raw)
		d[0] = math.Float32frombits(uint32(w) << 16)
		d[1] = math.Float32frombits(uint32(w>>16) << 16)
		d[2] = math.Float32frombits(uint32(w>>32) << 16)
		d[3] = math.Float32frombits(uint32(w>>48) << 16)
		dst, raw = dst[4:], raw[8:]
	}
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
	}
}

func bf16ToFloat64(dst []float64, raw []byte) {
	for len(dst) >= 4 && len(raw) >= 8 {
		d, w := dst[:4:4], binary.LittleEndian.Uint64(raw)
		d[0] = float64(math.Float32frombits(uint32(w) << 16))
		d[1] = float64(math.Float32frombits(uint32(w>>16) << 16))
		d[2] = float64(math.Float32frombits(uint32(w>>32) << 16))
		d[3] = float64(math.Float32frombits(uint32(w>>48) << 16))
		dst, raw = dst[4:], raw[8:]
	}
	for i := range dst {
		dst[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16))
	}
}

func f32ToFloat32(dst []float32, raw []byte) {
	for len(dst) >= 4 && len(raw) >= 16 {
		d, r := dst[:4:4], raw[:16:16]
		d[0] = math.Float32frombits(binary.LittleEndian.Uint32(r[0:4]))
		d[1] = math.Float32frombits(binary.LittleEndian.Uint32(r[4:8]))
		d[2] = math.Float32frombits(binary.LittleEndian.Uint32(r[8:12]))
		d[3] = math.Float32frombits(binary.LittleEndian.Uint32(r[12:16]))
		dst, raw = dst[4:], raw[16:]
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
}

func f32ToFloat64(dst []float64, raw []byte) {
	for len(dst) >= 4 && len(raw) >= 16 {
		d, r := dst[:4:4], raw[:16:16]
		d[0] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r[0:4])))
		d[1] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r[4:8])))
		d[2] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r[8:12])))
		d[3] = float64(math.Float32frombits(binary.LittleEndian.Uint32(r[12:16])))
		dst, raw = dst[4:], raw[16:]
	}
	for i := range dst {
		dst[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
	}
}

// checkDecodeSize verifies that raw holds exactly n elements of dt, so that the
// loops below never index out of range.
func checkDecodeSize(dt DType, n int, raw []byte) error {
	if dt == C64 {
		return ErrComplex
	}
	bits := dt.Bits()
	if bits == 0 {
		return fmt.Errorf("cannot decode dtype %s", dt)
	}
	if g := dt.GroupElems(); int64(n)%g != 0 {
		return fmt.Errorf("%s packs %d elements per %d bytes: cannot decode %d elements", dt, g, g*bits/8, n)
	}
	// n is a slice length, so n*64 cannot overflow int64.
	want := int64(n) * bits / 8
	if int64(len(raw)) != want {
		return fmt.Errorf("%d %s elements need %d bytes, got %d", n, dt, want, len(raw))
	}
	return nil
}

// decode handles every dtype but the BF16/F32 fast paths above.
func decode[T float32 | float64](dt DType, dst []T, raw []byte) error {
	if err := checkDecodeSize(dt, len(dst), raw); err != nil {
		return err
	}
	switch dt {
	case F64:
		for i := range dst {
			dst[i] = T(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case F16:
		table := f16Table()
		for i := range dst {
			dst[i] = T(table[binary.LittleEndian.Uint16(raw[2*i:])])
		}
	case F8_E4M3, F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ:
		table := &byteTables()[dt]
		for i, b := range raw {
			dst[i] = T(table[b])
		}
	case F4:
		// Two values per byte, the first in the low nibble (PyTorch
		// float4_e2m1fn_x2, ml_dtypes and the OCP MX packing).
		table := &byteTables()[F4]
		for i, b := range raw {
			dst[2*i] = T(table[b&0x0f])
			dst[2*i+1] = T(table[b>>4])
		}
	case F6_E2M3, F6_E3M2:
		// Four values per three bytes. The three bytes are read as one 24-bit
		// little-endian word and the values fill it from the least significant bit:
		// value j of a group is bits [6j, 6j+6). This extends the F4 low-nibble-first
		// order, so the first value always starts at bit 0 of the first byte.
		table := &byteTables()[dt]
		for g := 0; g < len(raw)/3; g++ {
			w := uint32(raw[3*g]) | uint32(raw[3*g+1])<<8 | uint32(raw[3*g+2])<<16
			out := dst[4*g : 4*g+4]
			out[0] = T(table[w&63])
			out[1] = T(table[(w>>6)&63])
			out[2] = T(table[(w>>12)&63])
			out[3] = T(table[(w>>18)&63])
		}
	case BOOL:
		for i, b := range raw {
			if b != 0 {
				dst[i] = 1
			} else {
				dst[i] = 0
			}
		}
	case U8:
		for i, b := range raw {
			dst[i] = T(b)
		}
	case I8:
		for i, b := range raw {
			dst[i] = T(int8(b))
		}
	case I16:
		for i := range dst {
			dst[i] = T(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		}
	case U16:
		for i := range dst {
			dst[i] = T(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case I32:
		for i := range dst {
			dst[i] = T(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	case U32:
		for i := range dst {
			dst[i] = T(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case I64:
		for i := range dst {
			dst[i] = T(int64(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case U64:
		for i := range dst {
			dst[i] = T(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	default:
		return fmt.Errorf("cannot decode dtype %s", dt)
	}
	return nil
}

// miniFloat describes a small binary floating-point format by its field widths and
// the way it spends codes on special values. Tables for every such format are
// built from this one description, so the rules live in one place.
type miniFloat struct {
	expBits, manBits, bias int
	signed                 bool // E8M0 has no sign bit
	ieeeSpecials           bool // the all-ones exponent holds ±inf (mantissa 0) and NaN (IEEE, E5M2)
	allOnesNaN             bool // only the all-ones code (either sign) is NaN; no inf ("fn" E4M3, E8M0)
	negZeroNaN             bool // the code of -0 is the single NaN; no inf, no -0 ("fnuz")
	noSubnormals           bool // exponent 0 is an ordinary power of two (E8M0 is a pure scale)
}

// value returns the real value of code (its low 1+expBits+manBits bits).
func (m miniFloat) value(code uint32) float64 {
	width := m.expBits + m.manBits
	expMax := uint32(1)<<m.expBits - 1
	manMax := uint32(1)<<m.manBits - 1
	neg := m.signed && code>>width&1 == 1
	e := code >> m.manBits & expMax
	f := code & manMax
	switch {
	case m.negZeroNaN && neg && e == 0 && f == 0:
		return math.NaN()
	case m.ieeeSpecials && e == expMax && f == 0:
		if neg {
			return math.Inf(-1)
		}
		return math.Inf(1)
	case m.ieeeSpecials && e == expMax:
		return math.NaN()
	case m.allOnesNaN && e == expMax && f == manMax:
		return math.NaN()
	}
	var v float64
	if e == 0 && !m.noSubnormals {
		// Subnormal: no implicit leading one, exponent of the smallest normal.
		v = math.Ldexp(float64(f), 1-m.bias-m.manBits)
	} else {
		v = math.Ldexp(float64(uint32(1)<<m.manBits|f), int(e)-m.bias-m.manBits)
	}
	if neg {
		v = -v
	}
	return v
}

// The formats stored in byteTables, by dtype.
var miniFloats = map[DType]miniFloat{
	F8_E4M3:     {expBits: 4, manBits: 3, bias: 7, signed: true, allOnesNaN: true},
	F8_E5M2:     {expBits: 5, manBits: 2, bias: 15, signed: true, ieeeSpecials: true},
	F8_E8M0:     {expBits: 8, manBits: 0, bias: 127, allOnesNaN: true, noSubnormals: true},
	F8_E4M3FNUZ: {expBits: 4, manBits: 3, bias: 8, signed: true, negZeroNaN: true},
	F8_E5M2FNUZ: {expBits: 5, manBits: 2, bias: 16, signed: true, negZeroNaN: true},
	F4:          {expBits: 2, manBits: 1, bias: 1, signed: true},
	F6_E2M3:     {expBits: 2, manBits: 3, bias: 1, signed: true},
	F6_E3M2:     {expBits: 3, manBits: 2, bias: 3, signed: true},
}

// byteTables maps every code of each 8-bit-or-narrower float dtype to its value.
// Every such value is exactly a float32. Built once, on first use.
var byteTables = sync.OnceValue(func() *[numDTypes][256]float32 {
	var t [numDTypes][256]float32
	for dt, m := range miniFloats {
		n := uint32(1) << (m.expBits + m.manBits)
		if m.signed {
			n <<= 1
		}
		for code := uint32(0); code < n; code++ {
			t[dt][code] = float32(m.value(code))
		}
	}
	return &t
})

// f16Table maps every F16 code to its float32 value (256 KiB, built once): one
// load per element beats the branches of subnormal/inf/NaN handling.
var f16Table = sync.OnceValue(func() *[65536]float32 {
	m := miniFloat{expBits: 5, manBits: 10, bias: 15, signed: true, ieeeSpecials: true}
	var t [65536]float32
	for code := range uint32(65536) {
		t[code] = float32(m.value(code))
	}
	return &t
})
