//go:build goexperiment.simd && amd64

package kernel

import (
	"math"
	"math/rand/v2"
	"simd/archsimd"
	"testing"
)

// reduce8 and max8 fold a vector in registers; they must give reduceLanes's
// and maxLane's bits, whose order the scalar path defines. Lanes of wildly
// different magnitudes make any other addition order round differently.
func TestVectorReductionsMatchLanes(t *testing.T) {
	if !archsimd.X86.AVX512() {
		return // as the path tests, it covers the paths this CPU runs: reduce8 is AVX-512 only
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 10000 {
		var a [lanes]float64
		for k := range a {
			a[k] = rng.NormFloat64() * math.Exp2(float64(rng.IntN(120)-60))
		}
		x := archsimd.LoadFloat64x8(&a)
		got := reduce8(x)
		for k := range a {
			a[k] = math.Abs(a[k])
		}
		gotMax := max8(archsimd.LoadFloat64x8(&a))
		archsimd.ClearAVXUpperBits()
		var signed [lanes]float64
		x.Store(&signed)
		if want := reduceLanes(&signed); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("reduce8(%v) = %v, reduceLanes = %v", signed, got, want)
		}
		if want := maxLane(&a); math.Float64bits(gotMax) != math.Float64bits(want) {
			t.Fatalf("max8(%v) = %v, maxLane = %v", a, gotMax, want)
		}
	}
}
