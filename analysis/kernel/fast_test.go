package kernel

import (
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
				braw, vraw := encode(be, b), encode(ve, v)
				var want Totals
				wantDD, wantBB := make([]float64, n), make([]float64, n)
				wdd, wbb := rowRawWith(scalarImpl, &want, be, braw, ve, vraw, wantDD, wantBB)
				for _, im := range simdImpls {
					t.Run(fmt.Sprintf("%s/%d/%d/n=%d", im.name, be, ve, n), func(t *testing.T) {
						var got Totals
						colDD, colBB := make([]float64, n), make([]float64, n)
						dd, bb := rowRawWith(im, &got, be, braw, ve, vraw, colDD, colBB)
						if totalsBits(&got) != totalsBits(&want) || math.Float64bits(dd) != math.Float64bits(wdd) || math.Float64bits(bb) != math.Float64bits(wbb) {
							t.Fatalf("totals:\n got %s\nwant %s", totalsBits(&got), totalsBits(&want))
						}
						for i := range colDD {
							if math.Float64bits(colDD[i]) != math.Float64bits(wantDD[i]) || math.Float64bits(colBB[i]) != math.Float64bits(wantBB[i]) {
								t.Fatalf("column %d differs", i)
							}
						}
					})
				}
			}
		}
	}
}
