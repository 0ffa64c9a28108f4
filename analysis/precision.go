package analysis

import (
	"math"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// By default a pair is compared at the VLA tensor's stored precision: the base
// value is first rounded to the VLA's dtype. For OpenVLA that is what the
// paper's code computes (it casts the Prismatic base to BF16, the VLA's dtype);
// for π0.5 the authors load PaliGemma as FP16 regardless, which the README
// spells out. A tensor frozen during the fine-tune and saved narrower than its
// base then shows a ΔW of exactly 0, not the storage rounding. Options.Exact
// subtracts at full precision instead.

// floatFormat is a binary floating-point format as far as rounding to it
// needs: explicit mantissa bits, the exponent of its smallest normal value,
// its largest finite value, and whether overflow gives NaN (formats without
// infinities, such as F8_E4M3) rather than ±Inf.
type floatFormat struct {
	mant        int
	minExp      int
	maxFinite   float64
	overflowNaN bool
}

// formats are the VLA dtypes a base can be rounded to. The others (FNUZ and
// E8M0 float8, F4, F6) are rare enough that such a pair is compared exactly,
// with a warning (see precisionNote).
var formats = map[tensor.DType]floatFormat{
	tensor.F32:     {23, -126, math.MaxFloat32, false},
	tensor.BF16:    {7, -126, 0x1.fep127, false},
	tensor.F16:     {10, -14, 65504, false},
	tensor.F8_E4M3: {3, -6, 448, true},
	tensor.F8_E5M2: {2, -14, 57344, false},
}

// round rounds x to the nearest value of f, ties to even, in one step (x is a
// float64, so a float32 or F64 base is rounded once, as torch does). NaN stays
// NaN; past the largest finite value the result is ±Inf (NaN for formats
// without infinities).
func (f floatFormat) round(x float64) float64 {
	if x != x || x == 0 {
		return x
	}
	if math.IsInf(x, 0) {
		if f.overflowNaN {
			return math.NaN()
		}
		return x
	}
	a := math.Abs(x)
	_, e := math.Frexp(a) // a in [2^(e-1), 2^e)
	exp := max(e-1, f.minExp)
	q := math.Ldexp(1, exp-f.mant) // the spacing of f's values around a
	r := math.RoundToEven(a/q) * q // a/q and ·q are exact: q is a power of two
	if r > f.maxFinite {
		if f.overflowNaN {
			return math.NaN()
		}
		r = math.Inf(1)
	}
	return math.Copysign(r, x)
}

// BaseRounding says how base values are rounded for a pair compared at the
// VLA's precision: nil when rounding cannot change any base value (same dtype,
// or a VLA dtype that holds every base value exactly), ok=false when the VLA's
// dtype is one deltascope does not round to.
func BaseRounding(base, vla tensor.DType) (round func(float64) float64, ok bool) {
	if base == vla || !base.IsFloat() || !vla.IsFloat() {
		return nil, true
	}
	switch vla {
	case tensor.F64:
		return nil, true
	case tensor.F32:
		if base != tensor.F64 {
			return nil, true // every narrower float is a float32 value
		}
	}
	f, known := formats[vla]
	if !known {
		return nil, false
	}
	return f.round, true
}

// roundInPlace rounds float32 base values (already widened) with round.
func roundInPlace(xs []float32, round func(float64) float64) {
	for i, x := range xs {
		xs[i] = float32(round(float64(x))) // exact: the result has ≤ 23 mantissa bits
	}
}
