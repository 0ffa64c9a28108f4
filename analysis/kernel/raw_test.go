package kernel

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// widened decodes stored bytes to float32 with the scalar widening: the values
// RowRaw must treat the bytes as.
func widened(e Encoding, p []byte) []float32 {
	n := len(p) / e.Size()
	out := make([]float32, n)
	if e == BF16 {
		widenBF16Scalar(out, p)
		return out
	}
	if e == F32AsBF16 { // the textbook rounding, not the code under test
		for i := range out {
			f := F32.decode(p, i)
			if f == f {
				f = nearestBF16(f)
			}
			out[i] = f
		}
		return out
	}
	for i := range out {
		out[i] = e.decode(p, i)
	}
	return out
}

// RowRaw on every path and encoding pair must equal widening to float32 and
// running the scalar Row, bit for bit: totals, row sums and column sums. The
// rows sit at odd byte offsets, so loads are unaligned.
func TestRowRawMatchesWidenedRow(t *testing.T) {
	encodings := []Encoding{F32, BF16, F32AsBF16}
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range testLengths() {
		b, v := randomPair(rng, n)
		for i := range b {
			switch rng.IntN(8) {
			case 0: // a tie for the BF16 rounding: ties go to the even code
				b[i] = math.Float32frombits(math.Float32bits(b[i])&^0xffff | 0x8000)
			case 1: // near the largest finite values: may round to Inf
				b[i] = math.Float32frombits(0x7f7f8000 | rng.Uint32()&0x7fff)
			}
		}
		for _, be := range encodings {
			for _, ve := range encodings {
				off := 1 + n%3
				braw := append(make([]byte, off), encode(be, b)...)[off:]
				vraw := append(make([]byte, off+1), encode(ve, v)...)[off+1:]
				wb, wv := widened(be, braw), widened(ve, vraw)
				want, wantDD, wantBB, wantColDD, wantColBB := runPath(scalarImpl, wb, wv, 0)
				for _, im := range allImpls() {
					t.Run(fmt.Sprintf("%s/%d/%d/n=%d", im.name, be, ve, n), func(t *testing.T) {
						got := Totals{BB: 1.5, VV: 2.5, DD: 0.1, BV: -3, AbsD: 0.7, MaxAbsD: 1e-9, Changed: 5, NonFiniteBase: 1, NonFiniteVLA: 2, N: 10}
						colDD, colBB := make([]float64, n+3), make([]float64, n+3)
						for i := range colDD {
							colDD[i], colBB[i] = float64(i)*0.25, float64(i)*0.5
						}
						dd, bb := rowRawWith(im, &got, be, braw, ve, vraw, colDD[:n], colBB[:n])
						if g, w := totalsBits(&got), totalsBits(&want); g != w {
							t.Fatalf("totals:\n got %s\nwant %s", g, w)
						}
						if math.Float64bits(dd) != math.Float64bits(wantDD) || math.Float64bits(bb) != math.Float64bits(wantBB) {
							t.Fatalf("row sums (%v, %v), want (%v, %v)", dd, bb, wantDD, wantBB)
						}
						for i := range colDD {
							if math.Float64bits(colDD[i]) != math.Float64bits(wantColDD[i]) || math.Float64bits(colBB[i]) != math.Float64bits(wantColBB[i]) {
								t.Fatalf("column %d: (%v, %v), want (%v, %v)", i, colDD[i], colBB[i], wantColDD[i], wantColBB[i])
							}
						}
					})
				}
			}
		}
	}
}

// The exported entry point checks lengths against the encodings.
func TestRowRawPanicsOnLengthMismatch(t *testing.T) {
	cases := []struct {
		name string
		b, v []byte
		cols int
	}{
		{"odd bf16 bytes", make([]byte, 5), make([]byte, 4), 2},
		{"v shorter", make([]byte, 8), make([]byte, 2), 4},
		{"columns short", make([]byte, 8), make([]byte, 8), 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			var tot Totals
			RowRaw(&tot, BF16, c.b, BF16, c.v, make([]float64, c.cols), make([]float64, c.cols))
		})
	}
}

// nearestBF16 is the textbook rounding: the nearer of the two BF16 values
// around f, the one with an even last bit on a tie; past the largest BF16,
// Inf (the next value up, at 2¹²⁸).
func nearestBF16(f float32) float32 {
	u := math.Float32bits(f)
	lo := u &^ 0xffff
	hi := lo + 0x10000
	value := func(bits uint32) float64 {
		if bits&0x7fffffff == 0x7f800000 {
			return math.Copysign(math.Ldexp(1, 128), float64(math.Float32frombits(bits)))
		}
		return float64(math.Float32frombits(bits))
	}
	dLo, dHi := math.Abs(float64(f)-value(lo)), math.Abs(value(hi)-float64(f))
	if dHi < dLo || (dHi == dLo && (lo>>16)&1 == 1) {
		return math.Float32frombits(hi)
	}
	return math.Float32frombits(lo)
}

// ChangedBeyondBF16 on every path counts what rounding each base value to BF16
// and comparing with the VLA's value counts, on random codes, ties, the
// largest values (which round to Inf) and specials.
func TestChangedBeyondBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const n = 4099 // a tail on every path
	for round := range 20 {
		base := make([]float32, n)
		vla := make([]byte, 2*n)
		want := int64(0)
		for i := range base {
			u := rng.Uint32()
			switch rng.IntN(6) {
			case 0:
				u = u&^0xffff | 0x8000 // a tie
			case 1:
				u = 0x7f7f0000 | u&0xffff | u&0x80000000 // near the largest finite values
			case 2:
				u = math.Float32bits(specials[rng.IntN(len(specials))])
			}
			base[i] = math.Float32frombits(u)
			code := uint16(rng.Uint32())
			if rng.IntN(2) == 0 { // mostly the rounded base: unchanged
				code = uint16(math.Float32bits(nearestBF16(base[i])) >> 16)
				if base[i] != base[i] {
					code = 0x7fc0 | uint16(rng.IntN(2))<<15 // some NaN
				}
				if rng.IntN(8) == 0 {
					code ^= 0x8000 // ±0 stays equal, anything else changes
				}
			}
			binary.LittleEndian.PutUint16(vla[2*i:], code)
			r, v := nearestBF16(base[i]), math.Float32frombits(uint32(code)<<16)
			if base[i] != base[i] {
				r = base[i]
			}
			if r != v && !(r != r && v != v) {
				want++
			}
		}
		braw := encode(F32, base)
		for _, im := range allImpls() {
			if got := im.changedBF16(braw, vla); got != want {
				t.Fatalf("round %d, %s: %d changed, want %d", round, im.name, got, want)
			}
		}
		if got := ChangedBeyondBF16(braw, vla); got != want {
			t.Fatalf("round %d, exported: %d changed, want %d", round, got, want)
		}
	}
}

// roundToBF16 against the textbook rounding on every class of input: ties to
// even (both directions), carries into the exponent, the largest values
// (rounding to ±Inf), subnormals, zeros, infinities and NaN payloads (kept).
func TestRoundToBF16(t *testing.T) {
	cases := []struct{ in, want uint32 }{
		{0x3f808000, 0x3f800000}, // 1 + 2⁻⁸: a tie, the even code is below
		{0x3f818000, 0x3f820000}, // a tie whose even code is above
		{0x3f808001, 0x3f810000}, // just past the tie
		{0x3f7fffff, 0x3f800000}, // carries into the exponent
		{0x7f7fffff, 0x7f800000}, // the largest float32 rounds to +Inf
		{0xff7f8000, 0xff800000}, // a tie at the top: −Inf
		{0x7f7f7fff, 0x7f7f0000}, // stays finite
		{0x00008000, 0x00000000}, // a subnormal tie to even (zero)
		{0x00018000, 0x00020000},
		{0x80000000, 0x80000000}, // −0
		{0x7f800000, 0x7f800000}, // +Inf
		{0x7fa00001, 0x7fa00001}, // signalling NaN, payload kept
		{0xffc00123, 0xffc00123},
	}
	for _, c := range cases {
		if got := roundToBF16(c.in); got != c.want {
			t.Errorf("roundToBF16(%#08x) = %#08x, want %#08x", c.in, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(15, 16))
	for range 1 << 16 {
		u := rng.Uint32()
		f := math.Float32frombits(u)
		if f != f {
			continue
		}
		if got, want := roundToBF16(u), math.Float32bits(nearestBF16(f)); got != want {
			t.Fatalf("roundToBF16(%#08x) = %#08x, want %#08x", u, got, want)
		}
	}
}
