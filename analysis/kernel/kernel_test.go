package kernel

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// testLengths covers every tail length, several blocks, and realistic rows.
func testLengths() []int {
	var ns []int
	for n := range 71 {
		ns = append(ns, n)
	}
	return append(ns, 1000, 4097, 16384)
}

// specials are the values most likely to expose a masking or ordering bug.
var specials = []float32{
	float32(math.NaN()), math.Float32frombits(0x7fa00001), math.Float32frombits(0xffc00123), // NaNs, one signalling
	float32(math.Inf(1)), float32(math.Inf(-1)),
	float32(math.Copysign(0, -1)), 0,
	math.Float32frombits(1), math.Float32frombits(0x807fffff), math.SmallestNonzeroFloat32, // subnormals
	math.MaxFloat32, -math.MaxFloat32, 1, -1,
}

// randomPair makes a base row and a VLA row that mostly differs from it by a
// little, sometimes not at all, over many magnitudes, with specials sprinkled.
func randomPair(rng *rand.Rand, n int) (b, v []float32) {
	b, v = make([]float32, n), make([]float32, n)
	for i := range n {
		x := float32(rng.NormFloat64() * math.Exp2(float64(rng.IntN(40)-20)))
		b[i] = x
		switch r := rng.IntN(10); {
		case r < 3:
			v[i] = x // unchanged
		case r < 9:
			v[i] = x + float32(rng.NormFloat64()*1e-3)*x
		default:
			v[i] = float32(rng.NormFloat64())
		}
		if rng.IntN(16) == 0 {
			b[i] = specials[rng.IntN(len(specials))]
		}
		if rng.IntN(16) == 0 {
			v[i] = specials[rng.IntN(len(specials))]
		}
	}
	return b, v
}

// allImpls is every code path this build and CPU can run, scalar first.
func allImpls() []impl { return append([]impl{scalarImpl}, simdImpls...) }

func totalsBits(t *Totals) string {
	return fmt.Sprintf("BB=%x VV=%x DD=%x BV=%x AbsD=%x Max=%x changed=%d nfB=%d nfV=%d n=%d",
		math.Float64bits(t.BB), math.Float64bits(t.VV), math.Float64bits(t.DD), math.Float64bits(t.BV),
		math.Float64bits(t.AbsD), math.Float64bits(t.MaxAbsD), t.Changed, t.NonFiniteBase, t.NonFiniteVLA, t.N)
}

// runPath feeds the rows through one path, starting from the same non-zero
// totals and column sums, and returns everything it produced. The inputs sit at
// offset off in their backing arrays (unaligned for off > 0), and the column
// slices have guard entries after them that must stay untouched.
func runPath(im impl, b, v []float32, off int) (t Totals, rowDD, rowBB float64, colDD, colBB []float64) {
	n := len(b)
	bb, vb := make([]float32, n+off), make([]float32, n+off)
	copy(bb[off:], b)
	copy(vb[off:], v)
	colDD, colBB = make([]float64, n+off+3), make([]float64, n+off+3)
	for i := range colDD {
		colDD[i] = float64(i) * 0.25
		colBB[i] = float64(i) * 0.5
	}
	t = Totals{BB: 1.5, VV: 2.5, DD: 0.1, BV: -3, AbsD: 0.7, MaxAbsD: 1e-9, Changed: 5, NonFiniteBase: 1, NonFiniteVLA: 2, N: 10}
	rowDD, rowBB = rowWith(im, &t, bb[off:], vb[off:], colDD[off:off+n], colBB[off:off+n])
	return t, rowDD, rowBB, colDD, colBB
}

func TestPathsAgreeBitForBit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range testLengths() {
		b, v := randomPair(rng, n)
		off := n % 4
		want, wantDD, wantBB, wantColDD, wantColBB := runPath(scalarImpl, b, v, off)
		for _, im := range allImpls()[1:] {
			t.Run(fmt.Sprintf("%s/n=%d", im.name, n), func(t *testing.T) {
				got, gotDD, gotBB, gotColDD, gotColBB := runPath(im, b, v, off)
				if g, w := totalsBits(&got), totalsBits(&want); g != w {
					t.Fatalf("totals differ from scalar:\n got %s\nwant %s", g, w)
				}
				if math.Float64bits(gotDD) != math.Float64bits(wantDD) || math.Float64bits(gotBB) != math.Float64bits(wantBB) {
					t.Fatalf("row sums (%v, %v), scalar (%v, %v)", gotDD, gotBB, wantDD, wantBB)
				}
				for i := range wantColDD {
					if math.Float64bits(gotColDD[i]) != math.Float64bits(wantColDD[i]) ||
						math.Float64bits(gotColBB[i]) != math.Float64bits(wantColBB[i]) {
						t.Fatalf("column %d: (%v, %v), scalar (%v, %v)", i-off, gotColDD[i], gotColBB[i], wantColDD[i], wantColBB[i])
					}
				}
			})
		}
	}
}

// TestRowIsTheActivePath checks the exported entry point dispatches to the path
// Implementation names, and that a CPU-capable SIMD build does choose SIMD.
func TestRowIsTheActivePath(t *testing.T) {
	wantName := "scalar"
	if len(simdImpls) > 0 {
		wantName = simdImpls[0].name
	}
	if Implementation() != wantName {
		t.Fatalf("Implementation() = %q, want %q", Implementation(), wantName)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	b, v := randomPair(rng, 1003)
	want, wantDD, wantBB, wantColDD, wantColBB := runPath(active, b, v, 0)
	_, _, _, gotColDD, gotColBB := runPath(active, b, v, 0) // same start state
	got := Totals{BB: 1.5, VV: 2.5, DD: 0.1, BV: -3, AbsD: 0.7, MaxAbsD: 1e-9, Changed: 5, NonFiniteBase: 1, NonFiniteVLA: 2, N: 10}
	for i := range gotColDD {
		gotColDD[i], gotColBB[i] = float64(i)*0.25, float64(i)*0.5
	}
	gotDD, gotBB := Row(&got, b, v, gotColDD[:len(b)], gotColBB[:len(b)])
	if totalsBits(&got) != totalsBits(&want) || gotDD != wantDD || gotBB != wantBB {
		t.Fatalf("Row differs from the %s path:\n got %s\nwant %s", active.name, totalsBits(&got), totalsBits(&want))
	}
	for i := range gotColDD {
		if math.Float64bits(gotColDD[i]) != math.Float64bits(wantColDD[i]) || math.Float64bits(gotColBB[i]) != math.Float64bits(wantColBB[i]) {
			t.Fatalf("column %d differs", i)
		}
	}
}

// reference is the textbook computation over a whole matrix: one float64 sum per
// statistic in element order, non-finite elements skipped.
type reference struct {
	totals       Totals
	rowDD, rowBB []float64
	colDD, colBB []float64
	absBV        float64 // Σ|b·v|, the scale for tolerances
}

func referenceStats(rows, cols int, b, v []float32) reference {
	r := reference{rowDD: make([]float64, rows), rowBB: make([]float64, rows), colDD: make([]float64, cols), colBB: make([]float64, cols)}
	r.totals.N = int64(rows * cols)
	for i := range rows {
		for j := range cols {
			x, y := b[i*cols+j], v[i*cols+j]
			bad := false
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				r.totals.NonFiniteBase++
				bad = true
			}
			if math.IsNaN(float64(y)) || math.IsInf(float64(y), 0) {
				r.totals.NonFiniteVLA++
				bad = true
			}
			if bad {
				continue
			}
			bd, vd := float64(x), float64(y)
			d := vd - bd
			r.totals.BB += bd * bd
			r.totals.VV += vd * vd
			r.totals.DD += d * d
			r.totals.BV += bd * vd
			r.absBV += math.Abs(bd * vd)
			r.totals.AbsD += math.Abs(d)
			r.totals.MaxAbsD = math.Max(r.totals.MaxAbsD, math.Abs(d))
			if d != 0 {
				r.totals.Changed++
			}
			r.rowDD[i] += d * d
			r.rowBB[i] += bd * bd
			r.colDD[j] += d * d
			r.colBB[j] += bd * bd
		}
	}
	return r
}

func closeTo(got, want, scale float64) bool {
	return math.Abs(got-want) <= 1e-12*math.Abs(scale)
}

func TestMatchesFloat64Reference(t *testing.T) {
	shapes := []struct{ rows, cols int }{{1, 1}, {3, 7}, {5, 64}, {4, 1000}, {2, 4097}, {1, 16384}, {64, 33}}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, im := range allImpls() {
		for _, sh := range shapes {
			t.Run(fmt.Sprintf("%s/%dx%d", im.name, sh.rows, sh.cols), func(t *testing.T) {
				b, v := randomPair(rng, sh.rows*sh.cols)
				want := referenceStats(sh.rows, sh.cols, b, v)
				var got Totals
				colDD, colBB := make([]float64, sh.cols), make([]float64, sh.cols)
				for i := range sh.rows {
					// Cut each row into two segments, as the engine may.
					cut := sh.cols / 3
					row := b[i*sh.cols : (i+1)*sh.cols]
					rowV := v[i*sh.cols : (i+1)*sh.cols]
					dd1, bb1 := rowWith(im, &got, row[:cut], rowV[:cut], colDD[:cut], colBB[:cut])
					dd2, bb2 := rowWith(im, &got, row[cut:], rowV[cut:], colDD[cut:], colBB[cut:])
					if !closeTo(dd1+dd2, want.rowDD[i], want.rowDD[i]) || !closeTo(bb1+bb2, want.rowBB[i], want.rowBB[i]) {
						t.Fatalf("row %d: (%v, %v), want (%v, %v)", i, dd1+dd2, bb1+bb2, want.rowDD[i], want.rowBB[i])
					}
				}
				w := want.totals
				for _, c := range []struct {
					name             string
					got, want, scale float64
				}{
					{"BB", got.BB, w.BB, w.BB}, {"VV", got.VV, w.VV, w.VV}, {"DD", got.DD, w.DD, w.DD},
					{"BV", got.BV, w.BV, want.absBV}, {"AbsD", got.AbsD, w.AbsD, w.AbsD},
				} {
					if !closeTo(c.got, c.want, c.scale) {
						t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
					}
				}
				if got.MaxAbsD != w.MaxAbsD || got.Changed != w.Changed || got.NonFiniteBase != w.NonFiniteBase ||
					got.NonFiniteVLA != w.NonFiniteVLA || got.N != w.N {
					t.Errorf("exact fields:\n got %s\nwant %s", totalsBits(&got), totalsBits(&w))
				}
				for j := range sh.cols {
					if !closeTo(colDD[j], want.colDD[j], want.colDD[j]) || !closeTo(colBB[j], want.colBB[j], want.colBB[j]) {
						t.Fatalf("column %d: (%v, %v), want (%v, %v)", j, colDD[j], colBB[j], want.colDD[j], want.colBB[j])
					}
				}
			})
		}
	}
}

// TestElementRules pins the per-element definitions on single elements, placed
// in every lane of a 9-element row so both the full block and the tail see them.
func TestElementRules(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	negZero := float32(math.Copysign(0, -1))
	tests := []struct {
		name                       string
		b, v                       float32
		dd, bb, absD               float64
		changed, nonFiniteB, nonFV int64
	}{
		{"unchanged", 2, 2, 0, 4, 0, 0, 0, 0},
		{"changed", 1, 3, 4, 1, 2, 1, 0, 0},
		{"sign flip", -1, 1, 4, 1, 2, 1, 0, 0},
		{"negative zero to zero is no change", negZero, 0, 0, 0, 0, 0, 0, 0},
		{"NaN base contributes nothing", nan, 5, 0, 0, 0, 0, 1, 0},
		{"Inf VLA contributes nothing", 5, inf, 0, 0, 0, 0, 0, 1},
		{"both non-finite", -inf, nan, 0, 0, 0, 0, 1, 1},
		{"subnormals", math.Float32frombits(1), math.Float32frombits(3), math.Ldexp(1, -296), math.Ldexp(1, -298), math.Ldexp(1, -148), 1, 0, 0},
		{"max float32 squared does not overflow float64", math.MaxFloat32, -math.MaxFloat32,
			4 * math.MaxFloat32 * math.MaxFloat32, math.MaxFloat32 * math.MaxFloat32, 2 * math.MaxFloat32, 1, 0, 0},
	}
	for _, im := range allImpls() {
		for _, tc := range tests {
			for pos := range 9 {
				t.Run(fmt.Sprintf("%s/%s/at%d", im.name, tc.name, pos), func(t *testing.T) {
					b, v := make([]float32, 9), make([]float32, 9)
					b[pos], v[pos] = tc.b, tc.v
					colDD, colBB := make([]float64, 9), make([]float64, 9)
					var got Totals
					dd, bb := rowWith(im, &got, b, v, colDD, colBB)
					if dd != tc.dd || bb != tc.bb || got.DD != tc.dd || got.BB != tc.bb || colDD[pos] != tc.dd || colBB[pos] != tc.bb {
						t.Errorf("dd/bb: row (%v, %v), totals (%v, %v), column (%v, %v), want (%v, %v)",
							dd, bb, got.DD, got.BB, colDD[pos], colBB[pos], tc.dd, tc.bb)
					}
					if got.AbsD != tc.absD || got.MaxAbsD != tc.absD {
						t.Errorf("AbsD %v, MaxAbsD %v, want %v", got.AbsD, got.MaxAbsD, tc.absD)
					}
					if got.Changed != tc.changed || got.NonFiniteBase != tc.nonFiniteB || got.NonFiniteVLA != tc.nonFV || got.N != 9 {
						t.Errorf("counts: %s", totalsBits(&got))
					}
				})
			}
		}
	}
}

func TestMerge(t *testing.T) {
	a := Totals{BB: 1, VV: 2, DD: 3, BV: 4, AbsD: 5, MaxAbsD: 6, Changed: 7, NonFiniteBase: 8, NonFiniteVLA: 9, N: 10}
	o := Totals{BB: 10, VV: 20, DD: 30, BV: 40, AbsD: 50, MaxAbsD: 0.5, Changed: 70, NonFiniteBase: 80, NonFiniteVLA: 90, N: 100}
	a.Merge(&o)
	want := Totals{BB: 11, VV: 22, DD: 33, BV: 44, AbsD: 55, MaxAbsD: 6, Changed: 77, NonFiniteBase: 88, NonFiniteVLA: 99, N: 110}
	if a != want {
		t.Fatalf("Merge = %+v, want %+v", a, want)
	}
}

func TestMisuseNamesTheRule(t *testing.T) {
	tests := []struct {
		name string
		call func()
		want string
	}{
		{"Row with short v", func() { Row(&Totals{}, make([]float32, 3), make([]float32, 2), make([]float64, 3), make([]float64, 3)) }, "same number"},
		{"Row with short colBB", func() { Row(&Totals{}, make([]float32, 3), make([]float32, 3), make([]float64, 3), make([]float64, 2)) }, "same number"},
		{"WidenBF16 with odd src", func() { WidenBF16(make([]float32, 2), make([]byte, 3)) }, "2*len(dst)"},
		{"WidenF16 with long src", func() { WidenF16(make([]float32, 2), make([]byte, 6)) }, "2*len(dst)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tc.want) {
					t.Fatalf("panic %q, want one mentioning %q", msg, tc.want)
				}
			}()
			tc.call()
		})
	}
}

// halfValue is the IEEE half definition written independently of
// halfToFloat32Bits: (−1)^s · 2^(e−15) · (1 + m/1024), subnormals 2^−14 · m/1024.
func halfValue(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0x1f:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	case 0:
		return sign * math.Ldexp(m/1024, -14)
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

func allCodes(offset int) []byte {
	src := make([]byte, offset+2*65536)
	for code := range 65536 {
		binary.LittleEndian.PutUint16(src[offset+2*code:], uint16(code))
	}
	return src[offset:]
}

func TestWidenExhaustive(t *testing.T) {
	src := allCodes(0)
	bf16, f16 := make([]float32, 65536), make([]float32, 65536)
	widenBF16Scalar(bf16, src)
	widenF16Scalar(f16, src)
	for code := range 65536 {
		if got := math.Float32bits(bf16[code]); got != uint32(code)<<16 {
			t.Fatalf("BF16 %#04x: bits %#08x, want %#08x", code, got, uint32(code)<<16)
		}
		want := halfValue(uint16(code))
		got := f16[code]
		if math.IsNaN(want) {
			// A NaN keeps its sign and its payload, shifted up by 13 bits.
			wantBits := uint32(code&0x8000)<<16 | 0x7f800000 | uint32(code&0x3ff)<<13
			if math.Float32bits(got) != wantBits {
				t.Fatalf("F16 NaN %#04x: bits %#08x, want %#08x", code, math.Float32bits(got), wantBits)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("F16 %#04x: %v, want %v", code, got, want)
		}
	}
	for _, im := range allImpls()[1:] {
		for _, off := range []int{0, 1, 3} {
			// 65536-off elements at an odd byte offset: unaligned, with a tail.
			in := allCodes(off)[:2*(65536-off)]
			t.Run(fmt.Sprintf("%s/offset%d", im.name, off), func(t *testing.T) {
				gotBF, gotF := make([]float32, 65536-off), make([]float32, 65536-off)
				im.widenBF16(gotBF, in)
				im.widenF16(gotF, in)
				for i := range gotBF {
					if math.Float32bits(gotBF[i]) != math.Float32bits(bf16[i]) {
						t.Fatalf("BF16 %#04x: %#08x, scalar %#08x", i, math.Float32bits(gotBF[i]), math.Float32bits(bf16[i]))
					}
					if math.Float32bits(gotF[i]) != math.Float32bits(f16[i]) {
						t.Fatalf("F16 %#04x: %#08x, scalar %#08x", i, math.Float32bits(gotF[i]), math.Float32bits(f16[i]))
					}
				}
			})
		}
	}
}

// TestWidenExported runs the exported wrappers on short lengths (every tail).
func TestWidenExported(t *testing.T) {
	for n := range 20 {
		src := allCodes(0)[2*0x3c00 : 2*(0x3c00+n)] // 1.0, 1.00098, ... in F16; tiny positives in BF16
		gotBF, gotF := make([]float32, n), make([]float32, n)
		WidenBF16(gotBF, src)
		WidenF16(gotF, src)
		for i := range n {
			code := 0x3c00 + i
			if math.Float32bits(gotBF[i]) != uint32(code)<<16 || float64(gotF[i]) != halfValue(uint16(code)) {
				t.Fatalf("n=%d, code %#04x: BF16 %v, F16 %v", n, code, gotBF[i], gotF[i])
			}
		}
	}
}

// FuzzRowPathsAgree feeds arbitrary bit patterns as the two rows: every path
// must match the scalar one bit for bit.
func FuzzRowPathsAgree(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 8*9))
	seed := make([]byte, 0, 8*len(specials)*len(specials))
	for _, x := range specials {
		for _, y := range specials {
			seed = binary.LittleEndian.AppendUint32(seed, math.Float32bits(x))
			seed = binary.LittleEndian.AppendUint32(seed, math.Float32bits(y))
		}
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		n := len(data) / 8
		b, v := make([]float32, n), make([]float32, n)
		for i := range n {
			b[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[8*i:]))
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[8*i+4:]))
		}
		want, _, _, wantColDD, wantColBB := runPath(scalarImpl, b, v, 1)
		if want.N != int64(n)+10 {
			t.Fatalf("N = %d, want %d", want.N, n+10)
		}
		for _, im := range allImpls()[1:] {
			got, _, _, gotColDD, gotColBB := runPath(im, b, v, 1)
			if totalsBits(&got) != totalsBits(&want) {
				t.Fatalf("%s:\n got %s\nwant %s", im.name, totalsBits(&got), totalsBits(&want))
			}
			for i := range wantColDD {
				if math.Float64bits(gotColDD[i]) != math.Float64bits(wantColDD[i]) || math.Float64bits(gotColBB[i]) != math.Float64bits(wantColBB[i]) {
					t.Fatalf("%s: column %d differs", im.name, i)
				}
			}
		}
	})
}

// encode stores f in e's encoding; BF16 keeps the top 16 bits (truncation is
// fine: the tests need BF16 codes, not rounded values).
func encode(e Encoding, f []float32) []byte {
	out := make([]byte, len(f)*e.Size())
	for i, x := range f {
		u := math.Float32bits(x)
		if e == BF16 {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(u>>16))
		} else {
			binary.LittleEndian.PutUint32(out[4*i:], u)
		}
	}
	return out
}
