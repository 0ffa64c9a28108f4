package analysis

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// An F32 base against a BF16 VLA at the VLA's precision: "changed" counts the
// elements whose rounded base differs from the VLA's value, NaN equal to NaN.
// Rows without a NaN or an Inf take the kernel's own count; rows with one are
// counted again by ChangedBeyondBF16 (see numericRaw). Both must give the
// brute-force count, on both read paths and for any blocking.
func TestChangedAtVLAPrecisionWithNonFinite(t *testing.T) {
	const rows, cols = 40, 37
	rng := rand.New(rand.NewPCG(31, 32))
	base, vla := make([]float64, rows*cols), make([]float64, rows*cols)
	specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1)}
	want := 0
	for i := range base {
		x := float64(float32(math.Ldexp(1+rng.Float64(), rng.IntN(12)-8)))
		base[i], vla[i] = x, nearest(x, 8)
		if rng.IntN(3) == 0 {
			vla[i] = nearest(x*(1+0.05*rng.NormFloat64()), 8)
		}
		if r := i / cols; r%5 == 0 && rng.IntN(6) == 0 { // only some rows hold specials
			switch rng.IntN(3) {
			case 0:
				base[i] = specials[rng.IntN(3)]
			case 1:
				vla[i] = specials[rng.IntN(3)]
			default:
				base[i], vla[i] = math.NaN(), math.NaN() // NaN on both sides: unchanged
			}
		}
		r := base[i]
		if !math.IsNaN(r) {
			r = nearest(r, 8)
		}
		if r != vla[i] && !(math.IsNaN(r) && math.IsNaN(vla[i])) {
			want++
		}
	}
	dir := t.TempDir()
	basePath, vlaPath := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "vla.safetensors")
	writeST(t, basePath, []stTensor{{"model.layers.0.a.weight", tensor.F32, []int64{rows, cols}, base}})
	writeST(t, vlaPath, []stTensor{{"model.layers.0.a.weight", tensor.BF16, []int64{rows, cols}, vla}})
	for _, copt := range []checkpoint.Options{{}, {Map: true}} {
		for _, opt := range []Options{{}, {Workers: 3, BlockElems: 50}} {
			b, err := checkpoint.OpenSide([]string{basePath}, copt)
			if err != nil {
				t.Fatal(err)
			}
			v, err := checkpoint.OpenSide([]string{vlaPath}, copt)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Analyze(context.Background(), b, v, opt)
			b.Close()
			v.Close()
			if err != nil {
				t.Fatal(err)
			}
			s := res.Tensors[0]
			if got := int(math.Round(float64(s.ChangedFraction) * rows * cols)); got != want {
				t.Errorf("map=%v workers=%d: %d changed, want %d", copt.Map, opt.Workers, got, want)
			}
			if s.NonFiniteBase == 0 || s.NonFiniteVLA == 0 {
				t.Errorf("map=%v: non-finite counts %d, %d: the test lost its specials", copt.Map, s.NonFiniteBase, s.NonFiniteVLA)
			}
		}
	}
}
