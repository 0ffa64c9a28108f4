package kernel

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// extremeFinite is a finite float32 from anywhere in the range: subnormals,
// zeros of both signs, the largest values (some of which round to Inf as
// BF16), and BF16 ties.
func extremeFinite(rng *rand.Rand) float32 {
	for {
		u := rng.Uint32()
		switch rng.IntN(10) {
		case 0:
			u &= 0x807fffff // subnormal or zero
		case 1:
			u = u&0x80000000 | 0x7f7f0000 | u&0xffff // around the BF16 overflow threshold 0x7f7f8000
		case 2:
			u = u&^0xffff | 0x8000 // a tie
		case 3:
			u &= 0x80000000 // ±0
		case 4: // either side of the threshold itself
			u = u&0x80000000 | 0x7f7f8000 - u>>30&1
		}
		if f := math.Float32frombits(u); isFinite32(f) {
			return f
		}
	}
}

// The SIMD paths take their fast loops only on steps where every element is
// finite, which randomPair's specials mostly prevent. Here every element is
// finite, over the whole exponent range (subnormals, the largest values,
// the rounding's overflow threshold), so the fast loops run on nearly every
// step; each encoding pair must still match the scalar path bit for bit.
func TestFastLoopsAgreeOnFiniteRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	encodings := []Encoding{F32, BF16, F32AsBF16}
	for _, n := range []int{16, 31, 4099} {
		b, v := make([]float32, n), make([]float32, n)
		for i := range b {
			b[i] = extremeFinite(rng)
			switch rng.IntN(3) {
			case 0:
				v[i] = b[i]
			case 1:
				v[i] = b[i] * (1 + float32(rng.NormFloat64())*1e-2)
			default:
				v[i] = extremeFinite(rng)
			}
			if !isFinite32(v[i]) {
				v[i] = 0
			}
		}
		for _, be := range encodings {
			for _, ve := range encodings {
				t.Run(fmt.Sprintf("%d/%d/n=%d", be, ve, n), func(t *testing.T) {
					compareWithScalar(t, be, encode(be, b), ve, encode(ve, v), n)
				})
			}
		}
	}
}

// compareWithScalar runs one row through every SIMD path and the scalar one
// and fails unless the totals, row sums and columns agree bit for bit.
func compareWithScalar(t *testing.T, be Encoding, braw []byte, ve Encoding, vraw []byte, n int) Totals {
	t.Helper()
	var want Totals
	wantDD, wantBB := make([]float64, n), make([]float64, n)
	wdd, wbb := rowRawWith(scalarImpl, &want, be, braw, ve, vraw, wantDD, wantBB)
	for _, im := range simdImpls {
		var got Totals
		colDD, colBB := make([]float64, n), make([]float64, n)
		dd, bb := rowRawWith(im, &got, be, braw, ve, vraw, colDD, colBB)
		if totalsBits(&got) != totalsBits(&want) || math.Float64bits(dd) != math.Float64bits(wdd) || math.Float64bits(bb) != math.Float64bits(wbb) {
			t.Fatalf("%s, encodings %d/%d: totals\n got %s\nwant %s", im.name, be, ve, totalsBits(&got), totalsBits(&want))
		}
		for i := range colDD {
			if math.Float64bits(colDD[i]) != math.Float64bits(wantDD[i]) || math.Float64bits(colBB[i]) != math.Float64bits(wantBB[i]) {
				t.Fatalf("%s, encodings %d/%d: column %d differs", im.name, be, ve, i)
			}
		}
	}
	return want
}

// The fast loops test finiteness without a constant, on v−b: a finite pair
// whose float32 difference overflows (±MaxFloat32) fails that test although
// nothing is wrong with it. Such a step must go through the masking path
// unchanged: counted as finite, and its float64 difference (2·MaxFloat32,
// finite there) added like any other.
func TestFastLoopsOverflowingDifference(t *testing.T) {
	const n = 64
	b, v := make([]float32, n), make([]float32, n)
	for i := range b {
		b[i], v[i] = float32(i)*0.25, float32(i)*0.25+0.125
	}
	for _, i := range []int{3, 17, 40} {
		b[i], v[i] = -math.MaxFloat32, math.MaxFloat32
	}
	// As BF16 (truncated) the extremes stay finite: 0x7f7f is the largest BF16.
	for _, enc := range [][2]Encoding{{F32, F32}, {F32, BF16}, {BF16, BF16}} {
		got := compareWithScalar(t, enc[0], encode(enc[0], b), enc[1], encode(enc[1], v), n)
		if got.NonFiniteBase != 0 || got.NonFiniteVLA != 0 || got.Changed != n || math.IsInf(got.MaxAbsD, 0) || got.MaxAbsD < math.MaxFloat32 {
			t.Errorf("encodings %d/%d: %s", enc[0], enc[1], totalsBits(&got))
		}
	}
}

// Rounding an F32 base to BF16 in 16 lanes leaves NaN to a separate test: a
// NaN with the top mantissa bits set (0x7fffffff, 0xffff8000) would round
// past the exponent to ±0, a finite value. Such a base must still count as
// non-finite, as roundToBF16 keeps NaN, on every path.
func TestRoundedBaseNaNStaysNaN(t *testing.T) {
	const n = 48
	b, v := make([]float32, n), make([]float32, n)
	for i := range b {
		b[i], v[i] = float32(i)+0.5, float32(i)
	}
	braw, vraw := encode(F32, b), encode(BF16, v)
	for _, k := range []int{5, 16, 31} {
		bits := []uint32{0x7fffffff, 0xffff8000, 0x7fff8001}[k%3]
		binary.LittleEndian.PutUint32(braw[4*k:], bits)
		if r := roundToBF16(bits); r != bits {
			t.Fatalf("roundToBF16(%#x) = %#x, want the NaN kept", bits, r)
		}
	}
	got := compareWithScalar(t, F32AsBF16, braw, BF16, vraw, n)
	if got.NonFiniteBase != 3 || got.NonFiniteVLA != 0 {
		t.Errorf("non-finite counts base %d, VLA %d; want 3 and 0", got.NonFiniteBase, got.NonFiniteVLA)
	}
}
