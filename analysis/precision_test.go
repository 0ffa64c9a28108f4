package analysis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// nearest rounds x to prec significant bits, ties to even, with math/big: an
// independent reference for normal values (big.Float has no subnormals and no
// overflow, which the explicit cases below cover).
func nearest(x float64, prec uint) float64 {
	f, _ := new(big.Float).SetMode(big.ToNearestEven).SetPrec(prec).SetFloat64(x).Float64()
	return f
}

func TestRoundToFormatMatchesBigFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, d := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, tensor.F8_E4M3, tensor.F8_E5M2} {
		f := formats[d]
		smallest := math.Ldexp(1, f.minExp)
		for range 20000 {
			// Values across the format's normal range, a quarter of them ties.
			e := f.minExp + rng.IntN(int(math.Log2(f.maxFinite))-f.minExp)
			x := math.Ldexp(1+rng.Float64(), e)
			if rng.IntN(4) == 0 {
				q := math.Ldexp(1, e-f.mant)
				x = (math.Floor(x/q) + 0.5) * q
			}
			if rng.IntN(2) == 0 {
				x = -x
			}
			want := nearest(x, uint(f.mant+1))
			if math.Abs(want) > f.maxFinite || math.Abs(x) < smallest {
				continue
			}
			if got := f.round(x); got != want {
				t.Fatalf("%s: round(%v) = %v, want %v", d, x, got, want)
			}
		}
	}
}

func TestRoundToFormatEdges(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		d       tensor.DType
		in, out float64
	}{
		{tensor.BF16, 1 + 0x1p-8, 1},                    // tie, even below
		{tensor.BF16, 1 + 3*0x1p-8, 1 + 0x1p-6},         // tie, even above
		{tensor.BF16, -(1 + 3*0x1p-8), -(1 + 0x1p-6)},   // the same below zero
		{tensor.BF16, 0x1.fep127 + 0x1p119, inf},        // the tie past the largest: Inf
		{tensor.BF16, 0x1.fep127 + 0x1p118, 0x1.fep127}, // below the tie: stays finite
		{tensor.BF16, 0x1p-133 * 1.5, 0x1p-132},         // subnormal tie, even above
		{tensor.BF16, 0x1p-134, 0},                      // half the smallest subnormal: to even (0)
		{tensor.F16, 65519, 65504},
		{tensor.F16, 65520, inf},
		{tensor.F16, -70000, -inf},
		{tensor.F16, 0x1p-25, 0},           // half the smallest subnormal
		{tensor.F16, 3 * 0x1p-25, 0x1p-23}, // tie between two subnormals, even above
		{tensor.F8_E4M3, 500, nan},         // no infinities: overflow is NaN
		{tensor.F8_E4M3, inf, nan},         //
		{tensor.F8_E5M2, 1e6, inf},         //
		{tensor.F32, 1 + 0x1p-24, 1},       // F64 → F32: one rounding
		{tensor.F32, 1 + 0x1p-24 + 0x1p-50, 1 + 0x1p-23},
		{tensor.BF16, inf, inf},
		{tensor.BF16, math.Copysign(0, -1), math.Copysign(0, -1)},
		{tensor.BF16, nan, nan},
	}
	for _, c := range cases {
		got := formats[c.d].round(c.in)
		same := got == c.out && math.Signbit(got) == math.Signbit(c.out) || (got != got && c.out != c.out)
		if !same {
			t.Errorf("%s: round(%v) = %v, want %v", c.d, c.in, got, c.out)
		}
	}
}

// stTensor is one tensor to write: a name, a dtype, a shape and its values,
// encoded by encodeAs.
type stTensor struct {
	name  string
	dtype tensor.DType
	shape []int64
	vals  []float64
}

// encodeAs stores values that the dtype holds exactly (the test rounds them
// first with math/big).
func encodeAs(t *testing.T, d tensor.DType, vals []float64) []byte {
	t.Helper()
	var out []byte
	for _, x := range vals {
		switch d {
		case tensor.F64:
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(x))
		case tensor.F32:
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(x)))
		case tensor.BF16:
			u := math.Float32bits(float32(x))
			if u&0xffff != 0 {
				t.Fatalf("%v is not a BF16 value", x)
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(u>>16))
		case tensor.F16: // normal values only
			u := math.Float32bits(float32(x))
			exp := int(u>>23&0xff) - 127
			if u&0x1fff != 0 || exp < -14 || exp > 15 {
				t.Fatalf("%v is not a normal F16 value", x)
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(u>>16&0x8000|uint32(exp+15)<<10|u>>13&0x3ff))
		default:
			t.Fatalf("no encoder for %s", d)
		}
	}
	return out
}

func writeST(t *testing.T, path string, ts []stTensor) {
	t.Helper()
	decl := make([]safetensors.WriteTensor, len(ts))
	for i, x := range ts {
		decl[i] = safetensors.WriteTensor{Name: x.name, DType: x.dtype, Shape: x.shape}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, decl, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		if _, err := w.Write(encodeAs(t, x.dtype, x.vals)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// A constructed pair: tensors frozen in the fine-tune and stored narrower than
// their base (F32 → BF16 on the kernel's raw path, with ties and odd lengths
// for the SIMD tails; F32 → F16 on the widening path; F64 → F32 and F64 → BF16
// on the float64 path), next to one that was trained. At the VLA's precision
// every frozen tensor reads exactly 0; with Exact it reads its rounding.
func TestDefaultModeFrozenConstructed(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	values := func(n int, ties bool) []float64 {
		out := make([]float64, n)
		for i := range out {
			x := math.Ldexp(1+rng.Float64(), rng.IntN(12)-8)
			if ties && i%3 == 0 {
				x = float64(math.Float32frombits(math.Float32bits(float32(x))&^0xffff | 0x8000)) // a BF16 tie
			}
			if rng.IntN(2) == 0 {
				x = -x
			}
			out[i] = float64(float32(x))
		}
		return out
	}
	round := func(vals []float64, prec uint) []float64 {
		out := make([]float64, len(vals))
		for i, x := range vals {
			out[i] = nearest(x, prec)
		}
		return out
	}
	a := values(37*19, true)
	b := values(5*7, false)
	c := make([]float64, 3*5)
	e := make([]float64, 4*9)
	for i := range c {
		c[i] = rng.NormFloat64()
	}
	for i := range e {
		e[i] = rng.NormFloat64()
	}
	trained := values(8*8, false)
	tuned := make([]float64, len(trained))
	for i, x := range trained {
		tuned[i] = nearest(x*(1+0.01*rng.NormFloat64()), 8)
	}
	dir := t.TempDir()
	basePath, vlaPath := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "vla.safetensors")
	writeST(t, basePath, []stTensor{
		{"model.layers.0.a.weight", tensor.F32, []int64{37, 19}, a},
		{"model.layers.0.b.weight", tensor.F32, []int64{5, 7}, b},
		{"model.layers.0.c.weight", tensor.F64, []int64{3, 5}, c},
		{"model.layers.0.e.weight", tensor.F64, []int64{4, 9}, e},
		{"model.layers.0.trained.weight", tensor.F32, []int64{8, 8}, trained},
	})
	writeST(t, vlaPath, []stTensor{
		{"model.layers.0.a.weight", tensor.BF16, []int64{37, 19}, round(a, 8)},
		{"model.layers.0.b.weight", tensor.F16, []int64{5, 7}, round(b, 11)},
		{"model.layers.0.c.weight", tensor.F32, []int64{3, 5}, round(c, 24)},
		{"model.layers.0.e.weight", tensor.BF16, []int64{4, 9}, round(e, 8)}, // F64 → BF16 in one rounding
		{"model.layers.0.trained.weight", tensor.BF16, []int64{8, 8}, tuned},
	})
	analyze := func(opt Options) map[string]TensorStats {
		base, err := checkpoint.OpenSide([]string{basePath}, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer base.Close()
		vla, err := checkpoint.OpenSide([]string{vlaPath}, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer vla.Close()
		res, err := Analyze(context.Background(), base, vla, opt)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]TensorStats{}
		for _, s := range res.Tensors {
			out[strings.TrimSuffix(strings.TrimPrefix(s.VLA, "model.layers.0."), ".weight")] = s
		}
		return out
	}
	for _, opt := range []Options{{}, {Workers: 3, BlockElems: 50}} {
		def := analyze(opt)
		opt.Exact = true
		exact := analyze(opt)
		for _, name := range []string{"a", "b", "c", "e"} {
			s, x := def[name], exact[name]
			if s.FroDelta != 0 || s.MaxAbsDelta != 0 || s.ChangedFraction != 0 {
				t.Errorf("%s (%s over %s): ‖ΔW‖ %g, max %g, changed %g at the VLA's precision; want exactly 0",
					name, s.DTypeVLA, s.DTypeBase, s.FroDelta, s.MaxAbsDelta, s.ChangedFraction)
			}
			if !(x.FroDelta > 0) {
				t.Errorf("%s exact: ‖ΔW‖ %g, want the storage rounding (> 0)", name, x.FroDelta)
			}
			for r := range s.RowDelta {
				if s.RowDelta[r] != 0 || s.RowBase[r] == 0 {
					t.Fatalf("%s row %d: ΔW %g, base %g", name, r, s.RowDelta[r], s.RowBase[r])
				}
			}
		}
		if def["trained"].FroDelta == 0 || def["trained"].ChangedFraction == 0 {
			t.Errorf("the trained tensor reads unchanged: %+v", def["trained"])
		}
	}
}

// No tensor aligned: an error that says so and carries the fix, never an
// analysis with ΔW 0.
func TestNothingAlignedFails(t *testing.T) {
	dir := t.TempDir()
	basePath, vlaPath := filepath.Join(dir, "base.safetensors"), filepath.Join(dir, "vla.safetensors")
	vals := make([]float64, 4*6)
	var bt, vt []stTensor
	for l := range 3 {
		for _, m := range []string{"attn.qkv", "mlp.fc1"} {
			n := fmt.Sprintf("blocks.%d.%s.weight", l, m)
			bt = append(bt, stTensor{"encoder.trunk." + n, tensor.F32, []int64{4, 6}, vals})
			vt = append(vt, stTensor{"vision_backbone.featurizer." + n, tensor.BF16, []int64{4, 6}, vals})
		}
	}
	writeST(t, basePath, bt)
	writeST(t, vlaPath, vt)
	base, err := checkpoint.OpenSide([]string{basePath}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide([]string{vlaPath}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vla.Close()
	_, err = Analyze(context.Background(), base, vla, Options{})
	var na *NoAlignmentError
	if !errors.As(err, &na) {
		t.Fatalf("err = %v, want a NoAlignmentError", err)
	}
	const rule = `^encoder\.trunk\.=>vision_backbone.featurizer.`
	if len(na.Suggestions) != 1 || na.Suggestions[0].Rule != rule || na.Suggestions[0].Pairs != 6 {
		t.Errorf("suggestions %+v, want %s pairing 6", na.Suggestions, rule)
	}
	if msg := err.Error(); !strings.Contains(msg, "no tensor aligned") || !strings.Contains(msg, "--map '"+rule+"'") {
		t.Errorf("message %q does not say why and how to fix it", msg)
	}
	res, err := Analyze(context.Background(), base, vla, Options{Map: []string{rule}})
	if err != nil || len(res.Tensors) != 6 || len(res.Suggestions) != 0 {
		t.Fatalf("with the suggested rule: err %v, %d tensors, suggestions %+v", err, len(res.Tensors), res.Suggestions)
	}
}
