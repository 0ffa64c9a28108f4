//go:build goexperiment.simd && amd64

package kernel

import (
	"math/bits"
	"simd/archsimd"
	"unsafe"
)

// detectSIMD lists the SIMD paths the CPU can run, best first. Both paths use
// the same lane layout as rowScalar (element k in lane k mod 8), so they differ
// only in speed.
func detectSIMD() []impl {
	var out []impl
	if archsimd.X86.AVX512() {
		out = append(out, impl{name: "avx512", row: rowAVX512, rowF32: f32Row(rowAVX512), widenBF16: widenBF16AVX2, widenF16: widenF16AVX2, changedBF16: changedBF16AVX2})
	}
	if archsimd.X86.AVX2() {
		out = append(out, impl{name: "avx2", row: rowAVX2, rowF32: f32Row(rowAVX2), widenBF16: widenBF16AVX2, widenF16: widenF16AVX2, changedBF16: changedBF16AVX2})
	}
	return out
}

// f32Row runs a raw row kernel on float32 values, viewed as their bytes: the
// host (amd64) is little-endian, as the F32 encoding.
func f32Row(row func(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) rowSums) func(b, v []float32, colDD, colBB []float64) rowSums {
	return func(b, v []float32, colDD, colBB []float64) rowSums {
		return row(F32, float32Bytes(b), F32, float32Bytes(v), colDD, colBB)
	}
}

func float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// The SIMD row kernels follow rowScalar's order exactly: element k of the
// segment goes to lane k mod 8, an element that is non-finite on either side is
// zeroed in both before any arithmetic, and no rounded product is fused into
// an add (AVX-512 fuses only exact ones: see step8).

const (
	magnitudeBits = 0x7fffffff // float32 without its sign
	infBits       = 0x7f800000 // float32 +Inf; a smaller magnitude is finite
	absBits64     = 0x7fffffffffffffff
)

// leaveAVX: every SIMD entry point ends with VZEROUPPER
// (archsimd.ClearAVXUpperBits). Without it the dirty upper register halves slow
// down the SSE code Go emits for everything else: measured, rowScalar ran 2×
// slower (6.4 vs 3.3 ns/element) after an AVX-512 row in the same thread.

// blockCounts are the integer statistics of the blocks seen so far.
type blockCounts struct {
	changed, nonFiniteBase, nonFiniteVLA int
}

// mask zeroes the elements of a block that are non-finite on either side and
// counts the non-finite ones. Finite means magnitude bits below +Inf's: an
// integer compare, with no NaN comparison rules. Real weights are all finite, so
// the counting and zeroing sit behind one predictable branch: measured, doing
// them unconditionally took 60 % of the row time.
func (c *blockCounts) mask(b8, v8 archsimd.Float32x8, magnitude, inf archsimd.Int32x8) (archsimd.Float32x8, archsimd.Float32x8) {
	finiteB := inf.Greater(b8.AsInt32x8().And(magnitude))
	finiteV := inf.Greater(v8.AsInt32x8().And(magnitude))
	ok := finiteB.And(finiteV)
	if ok.ToBits() == 0xff {
		return b8, v8
	}
	c.nonFiniteBase += bits.OnesCount8(^finiteB.ToBits())
	c.nonFiniteVLA += bits.OnesCount8(^finiteV.ToBits())
	return b8.Masked(ok), v8.Masked(ok)
}

// sumLanes adds the eight int32 lane counters. Each lane counts at most one
// element per block of 8, and blocks is called per row segment, so a lane
// overflows only past 2^34 elements (64 GiB of float32 per side) in one call.
func sumLanes(x archsimd.Int32x8) int {
	var a [8]int32
	x.Store(&a)
	total := 0
	for _, n := range a {
		total += int(n)
	}
	return total
}

// blocksFunc folds whole blocks of 8 elements: b and v hold len(colDD) elements
// (a multiple of 8) encoded as be and ve.
type blocksFunc func(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64)

// withPaddedTail runs blocks on the whole blocks of 8 elements, then on the
// last partial block copied into zero-padded buffers. The padding is +0 in both
// encodings: finite, unchanged, adding +0 to its lanes, which changes no bit
// (lanes start at +0 and never hold −0), so the result is that of rowScalar's
// order.
func withPaddedTail(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64, blocks blocksFunc) {
	n := len(colDD)
	whole := n &^ 7
	bs, vs := be.Size(), ve.Size()
	blocks(be, b[:whole*bs], ve, v[:whole*vs], colDD[:whole], colBB[:whole])
	if whole == n {
		return
	}
	var tb, tv [8 * 4]byte
	var tdd, tbb [8]float64
	copy(tb[:], b[whole*bs:n*bs])
	copy(tv[:], v[whole*vs:n*vs])
	copy(tdd[:], colDD[whole:n])
	copy(tbb[:], colBB[whole:n])
	blocks(be, tb[:8*bs], ve, tv[:8*vs], tdd[:], tbb[:])
	copy(colDD[whole:n], tdd[:])
	copy(colBB[whole:n], tbb[:])
}

// load8 reads elements i..i+7 of p as float32, widening BF16 in the register
// (zero-extend each code to 32 bits, shift it into the top half: the bits
// widenBF16Scalar writes). The branch is on a loop invariant and predicts
// perfectly. p points at a buffer the caller has checked holds the elements:
// indexing a slice here would cost two bounds checks per load, a third of the
// loop.
func load8(e Encoding, p unsafe.Pointer, i int) archsimd.Float32x8 {
	switch e {
	case BF16:
		codes := archsimd.LoadUint8x16((*[16]uint8)(unsafe.Add(p, 2*i))).AsUint16x8()
		return codes.ExtendToUint32().ShiftAllLeft(16).AsFloat32x8()
	case F32AsBF16:
		return roundBF16x8(archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(p, 4*i))))
	}
	return archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(p, 4*i)))
}

// roundBF16x8 is roundToBF16 on 8 lanes: add 0x7fff plus the lowest kept bit,
// clear the low half; NaN lanes are kept as they are by a merge.
func roundBF16x8(f archsimd.Float32x8) archsimd.Float32x8 {
	u := f.AsUint32x8()
	rounded := u.Add(archsimd.BroadcastUint32x8(0x7fff)).Add(u.ShiftAllRight(16).And(archsimd.BroadcastUint32x8(1))).
		And(archsimd.BroadcastUint32x8(0xffff0000))
	return rounded.Merge(u, f.Equal(f)).AsFloat32x8()
}

// base returns a pointer to n elements of p encoded as e, after checking that
// p holds them (so load8 stays inside p).
func base(e Encoding, p []byte, n int) unsafe.Pointer {
	if len(p) < n*e.Size() {
		panic("kernel: row buffer shorter than its elements")
	}
	if n == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(p))
}

// avx2Acc holds the eight lanes as two Float64x4 per sum: lanes 0–3 in the Lo
// vectors, lanes 4–7 in the Hi ones.
type avx2Acc struct {
	bbLo, bbHi, vvLo, vvHi, ddLo, ddHi, bvLo, bvHi, adLo, adHi, mxLo, mxHi archsimd.Float64x4
	blockCounts
}

func rowAVX2(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) rowSums {
	defer archsimd.ClearAVXUpperBits() // see leaveAVX
	var acc avx2Acc
	withPaddedTail(be, b, ve, v, colDD, colBB, acc.blocks)
	s := rowSums{changed: int64(acc.changed), nonFiniteBase: int64(acc.nonFiniteBase), nonFiniteVLA: int64(acc.nonFiniteVLA)}
	s.bb = reduce4x2(acc.bbLo, acc.bbHi)
	s.vv = reduce4x2(acc.vvLo, acc.vvHi)
	s.dd = reduce4x2(acc.ddLo, acc.ddHi)
	s.bv = reduce4x2(acc.bvLo, acc.bvHi)
	s.absD = reduce4x2(acc.adLo, acc.adHi)
	var mx [lanes]float64
	acc.mxLo.Store((*[4]float64)(mx[:4]))
	acc.mxHi.Store((*[4]float64)(mx[4:]))
	s.maxAbsD = maxLane(&mx)
	return s
}

// blocks folds whole blocks of 8 (len(b) is a multiple of 8). The accumulators
// live in locals for the loop. With 16 vector registers some of the 12 spill to
// the stack, but measured, that beats running each half of the lanes in its own
// pass (0.87 vs 1.1 ns/element).
func (a *avx2Acc) blocks(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) {
	n := len(colDD)
	colBB = colBB[:n]
	bp, vp := base(be, b, n), base(ve, v, n)
	magnitude, inf := archsimd.BroadcastInt32x8(magnitudeBits), archsimd.BroadcastInt32x8(infBits)
	absMask := archsimd.BroadcastUint64x4(absBits64)
	bbLo, bbHi, vvLo, vvHi, ddLo, ddHi := a.bbLo, a.bbHi, a.vvLo, a.vvHi, a.ddLo, a.ddHi
	bvLo, bvHi, adLo, adHi, mxLo, mxHi := a.bvLo, a.bvHi, a.adLo, a.adHi, a.mxLo, a.mxHi
	c := a.blockCounts
	var changed archsimd.Int32x8 // per-lane counts, flushed into c below
	for i := 0; i+8 <= n; i += 8 {
		b8, v8 := load8(be, bp, i), load8(ve, vp, i)
		b8, v8 = c.mask(b8, v8, magnitude, inf)
		changed = changed.Sub(b8.NotEqual(v8).ToInt32x8()) // a true lane is −1

		bLo, vLo := b8.GetLo().ConvertToFloat64(), v8.GetLo().ConvertToFloat64()
		dLo := vLo.Sub(bLo)
		sqBLo, sqDLo := bLo.Mul(bLo), dLo.Mul(dLo)
		absLo := dLo.AsUint64x4().And(absMask).AsFloat64x4()
		bbLo = bbLo.Add(sqBLo)
		vvLo = vvLo.Add(vLo.Mul(vLo))
		ddLo = ddLo.Add(sqDLo)
		bvLo = bvLo.Add(bLo.Mul(vLo))
		adLo = adLo.Add(absLo)
		mxLo = mxLo.Max(absLo)
		p := (*[4]float64)(colDD[i : i+4])
		archsimd.LoadFloat64x4(p).Add(sqDLo).Store(p)
		p = (*[4]float64)(colBB[i : i+4])
		archsimd.LoadFloat64x4(p).Add(sqBLo).Store(p)

		bHi, vHi := b8.GetHi().ConvertToFloat64(), v8.GetHi().ConvertToFloat64()
		dHi := vHi.Sub(bHi)
		sqBHi, sqDHi := bHi.Mul(bHi), dHi.Mul(dHi)
		absHi := dHi.AsUint64x4().And(absMask).AsFloat64x4()
		bbHi = bbHi.Add(sqBHi)
		vvHi = vvHi.Add(vHi.Mul(vHi))
		ddHi = ddHi.Add(sqDHi)
		bvHi = bvHi.Add(bHi.Mul(vHi))
		adHi = adHi.Add(absHi)
		mxHi = mxHi.Max(absHi)
		p = (*[4]float64)(colDD[i+4 : i+8])
		archsimd.LoadFloat64x4(p).Add(sqDHi).Store(p)
		p = (*[4]float64)(colBB[i+4 : i+8])
		archsimd.LoadFloat64x4(p).Add(sqBHi).Store(p)
	}
	a.bbLo, a.bbHi, a.vvLo, a.vvHi, a.ddLo, a.ddHi = bbLo, bbHi, vvLo, vvHi, ddLo, ddHi
	a.bvLo, a.bvHi, a.adLo, a.adHi, a.mxLo, a.mxHi = bvLo, bvHi, adLo, adHi, mxLo, mxHi
	c.changed += sumLanes(changed)
	a.blockCounts = c
}

func reduce4x2(lo, hi archsimd.Float64x4) float64 {
	var a [lanes]float64
	lo.Store((*[4]float64)(a[:4]))
	hi.Store((*[4]float64)(a[4:]))
	return reduceLanes(&a)
}

// avx512Acc holds all eight lanes in one Float64x8 per sum.
//
// Go's register allocator gives SIMD values only X0–X14 (15 registers, not
// the 32 AVX-512 has), so the loops below keep nothing in a vector register
// across iterations but the six accumulators: constants are read from memory
// by the instructions that use them (package-level arrays, folded into the
// instruction as a memory operand), and tests that would need a constant are
// written without one (allFinite). With the constants in registers, one
// accumulator was spilled to the stack every iteration, putting a
// store-to-load forward into its dependency chain.
type avx512Acc struct {
	bb, vv, dd, bv, absD, maxAbsD archsimd.Float64x8
	blockCounts
}

// Constants the AVX-512 loops read from memory (see avx512Acc).
var (
	absMask8  = [8]uint64{absBits64, absBits64, absBits64, absBits64, absBits64, absBits64, absBits64, absBits64}
	roundHalf = [16]uint32{0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff}
	roundOne  = [16]uint32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	roundTop  = [16]uint32{0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000, 0xffff0000}
)

func rowAVX512(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) rowSums {
	defer archsimd.ClearAVXUpperBits() // see leaveAVX
	var acc avx512Acc
	withPaddedTail(be, b, ve, v, colDD, colBB, acc.blocks16)
	s := rowSums{changed: int64(acc.changed), nonFiniteBase: int64(acc.nonFiniteBase), nonFiniteVLA: int64(acc.nonFiniteVLA)}
	s.bb = reduce8(acc.bb)
	s.vv = reduce8(acc.vv)
	s.dd = reduce8(acc.dd)
	s.bv = reduce8(acc.bv)
	s.absD = reduce8(acc.absD)
	s.maxAbsD = max8(acc.maxAbsD)
	return s
}

// step8 folds the eight float64 lanes bd, vd (elements in lane order) into the
// accumulators, which it returns, and into the columns at cdd, cbb, with
// rowScalar's arithmetic. The products b·b, v·v and b·v of two float32 values
// are exact in float64, so adding them with one fused multiply-add gives the
// bits of rowScalar's separate multiply and add; d·d is not exact and keeps
// its own multiply. (Measured on the Zen 5 VM: the fused form moves three
// adds per step off the floating-point add pipes, 8 % of the BF16 loop.) It is
// small enough to inline, and takes and returns the accumulators by value
// (through pointers they would live in memory), so they stay in registers in
// the loops that call it.
func step8(bd, vd archsimd.Float64x8, bb, vv, dd, bv, absD, maxAbsD archsimd.Float64x8, cdd, cbb *[8]float64) (_, _, _, _, _, _ archsimd.Float64x8) {
	d := vd.Sub(bd)
	sqD := d.Mul(d)
	abs := d.AsUint64x8().And(archsimd.LoadUint64x8(&absMask8)).AsFloat64x8()
	archsimd.LoadFloat64x8(cdd).Add(sqD).Store(cdd)
	bd.MulAdd(bd, archsimd.LoadFloat64x8(cbb)).Store(cbb)
	return bd.MulAdd(bd, bb), vd.MulAdd(vd, vv), dd.Add(sqD), bd.MulAdd(vd, bv), absD.Add(abs), maxAbsD.Max(abs)
}

// blocks folds whole blocks of 8, masking non-finite elements (see mask).
func (a *avx512Acc) blocks(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) {
	n := len(colDD)
	colBB = colBB[:n]
	bp, vp := base(be, b, n), base(ve, v, n)
	magnitude, inf := archsimd.BroadcastInt32x8(magnitudeBits), archsimd.BroadcastInt32x8(infBits)
	bb, vv, dd, bv, absD, maxAbsD := a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD
	c := a.blockCounts
	var changed archsimd.Int32x8 // per-lane counts, flushed into c below
	for i := 0; i+8 <= n; i += 8 {
		b8, v8 := load8(be, bp, i), load8(ve, vp, i)
		b8, v8 = c.mask(b8, v8, magnitude, inf)
		changed = changed.Sub(b8.NotEqual(v8).ToInt32x8()) // a true lane is −1
		bb, vv, dd, bv, absD, maxAbsD = step8(b8.ConvertToFloat64(), v8.ConvertToFloat64(), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(colDD[i:i+8]), (*[8]float64)(colBB[i:i+8]))
	}
	a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD = bb, vv, dd, bv, absD, maxAbsD
	c.changed += sumLanes(changed)
	a.blockCounts = c
}

// blocks16 is blocks 16 elements a step for every encoding pair (run16): the
// finiteness test and the change count run once per 16 float32 lanes,
// halving their cost per element. The float64 arithmetic is the same two
// 8-lane steps in element order, so every sum is blocks's bit for bit. A step
// holding a non-finite element goes through blocks, which masks it; so does a
// last 8.
func (a *avx512Acc) blocks16(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) {
	n := len(colDD)
	colBB = colBB[:n]
	bp, vp := base(be, b, n), base(ve, v, n)
	bs, vs := be.Size(), ve.Size()
	run := a.run16For(be, ve)
	if run == nil {
		a.blocks(be, b, ve, v, colDD, colBB)
		return
	}
	whole := n &^ 15
	for i := 0; i < whole; {
		i = run(bp, vp, unsafe.Pointer(unsafe.SliceData(colDD)), unsafe.Pointer(unsafe.SliceData(colBB)), i, whole)
		if i < whole {
			a.blocks(be, b[bs*i:bs*(i+16)], ve, v[vs*i:vs*(i+16)], colDD[i:i+16], colBB[i:i+16])
			i += 16
		}
	}
	if whole < n { // a last 8
		a.blocks(be, b[bs*whole:bs*n], ve, v[vs*whole:vs*n], colDD[whole:n], colBB[whole:n])
	}
}

// run16 folds 16-element steps from element i until end (both multiples of
// 16, inside the buffers blocks16 checked), or until a step holds a non-finite
// element: it returns that step's index, unprocessed.
type run16 func(bp, vp, cdd, cbb unsafe.Pointer, i, end int) int

// run16For picks the loop for an encoding pair, or nil. Each pair has its own
// loop: with the encodings switched inside one, the compiler kept the
// accumulators and constants in memory (2× slower).
func (a *avx512Acc) run16For(be, ve Encoding) run16 {
	switch {
	case be == BF16 && ve == BF16:
		return a.runBF16BF16
	case be == F32AsBF16 && ve == BF16:
		return a.runRoundedBF16
	case be == F32 && ve == BF16:
		return a.runF32BF16
	case be == F32 && ve == F32: // measured 20 % faster than blocks's 8-lane loop, which it used to be slower than
		return a.runF32F32
	}
	return nil
}

// allFinite reports whether every lane of b and v is finite, with no constant
// in a register: x−x is NaN exactly when x is NaN or infinite, and v−b is
// non-finite when either side is. A finite difference that overflows to Inf
// also fails the test, which only sends that step to blocks: it masks nothing
// there and adds the same numbers.
func allFinite(b, v archsimd.Float32x16) bool {
	t := v.Sub(b)
	t = t.Sub(t)
	return t.Equal(t).ToBits() == 0xffff
}

// widenBF16x16 reads 16 BF16 codes at p+2i as float32 (the bits
// widenBF16Scalar writes).
func widenBF16x16(p unsafe.Pointer, i int) archsimd.Float32x16 {
	return archsimd.LoadUint16x16((*[16]uint16)(unsafe.Add(p, 2*i))).ExtendToUint32().ShiftAllLeft(16).AsFloat32x16()
}

// f32x8At converts the 8 float32 at p+4i to float64 straight from memory:
// one instruction, where taking a half of a 16-lane register first costs an
// extract more.
func f32x8At(p unsafe.Pointer, i int) archsimd.Float64x8 {
	return archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(p, 4*i))).ConvertToFloat64()
}

// The loops differ only in how they load. There are no calls and no bounds
// checks in them, so the accumulators stay in registers. The change count is
// a popcount of a mask, in a general register.

func (a *avx512Acc) runBF16BF16(bp, vp, cdd, cbb unsafe.Pointer, i, end int) int {
	bb, vv, dd, bv, absD, maxAbsD := a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD
	changed := 0
	for ; i < end; i += 16 {
		b16, v16 := widenBF16x16(bp, i), widenBF16x16(vp, i)
		if !allFinite(b16, v16) {
			break
		}
		changed += bits.OnesCount16(b16.NotEqual(v16).ToBits())
		bb, vv, dd, bv, absD, maxAbsD = step8(b16.GetLo().ConvertToFloat64(), v16.GetLo().ConvertToFloat64(), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*i)), (*[8]float64)(unsafe.Add(cbb, 8*i)))
		bb, vv, dd, bv, absD, maxAbsD = step8(b16.GetHi().ConvertToFloat64(), v16.GetHi().ConvertToFloat64(), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*(i+8))), (*[8]float64)(unsafe.Add(cbb, 8*(i+8))))
	}
	a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD = bb, vv, dd, bv, absD, maxAbsD
	a.changed += changed
	return i
}

// runRoundedBF16 rounds the F32 base as roundToBF16 without its NaN case:
// that case can round a NaN to a finite value, so the finiteness test also
// takes the stored base (bf−bf is 0 exactly when bf is finite), and a lane
// the rounding changed wrongly is never used. A finite base that rounds to
// Inf fails the test through the rounded value.
func (a *avx512Acc) runRoundedBF16(bp, vp, cdd, cbb unsafe.Pointer, i, end int) int {
	bb, vv, dd, bv, absD, maxAbsD := a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD
	changed := 0
	for ; i < end; i += 16 {
		u := archsimd.LoadUint32x16((*[16]uint32)(unsafe.Add(bp, 4*i)))
		bf := u.AsFloat32x16()
		// The kept bit comes down with an arithmetic shift: the compiler has an
		// immediate form for it, not for the logical one (which loaded the count
		// into a register every step), and bit 0 is the same.
		lsb := u.AsInt32x16().ShiftAllRight(16).AsUint32x16().And(archsimd.LoadUint32x16(&roundOne))
		b16 := u.Add(archsimd.LoadUint32x16(&roundHalf)).Add(lsb).And(archsimd.LoadUint32x16(&roundTop)).AsFloat32x16()
		v16 := widenBF16x16(vp, i)
		t := v16.Sub(b16).Add(bf.Sub(bf))
		t = t.Sub(t)
		if t.Equal(t).ToBits() != 0xffff {
			break
		}
		changed += bits.OnesCount16(b16.NotEqual(v16).ToBits())
		bb, vv, dd, bv, absD, maxAbsD = step8(b16.GetLo().ConvertToFloat64(), v16.GetLo().ConvertToFloat64(), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*i)), (*[8]float64)(unsafe.Add(cbb, 8*i)))
		bb, vv, dd, bv, absD, maxAbsD = step8(b16.GetHi().ConvertToFloat64(), v16.GetHi().ConvertToFloat64(), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*(i+8))), (*[8]float64)(unsafe.Add(cbb, 8*(i+8))))
	}
	a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD = bb, vv, dd, bv, absD, maxAbsD
	a.changed += changed
	return i
}

func (a *avx512Acc) runF32BF16(bp, vp, cdd, cbb unsafe.Pointer, i, end int) int {
	bb, vv, dd, bv, absD, maxAbsD := a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD
	changed := 0
	for ; i < end; i += 16 {
		b16 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(bp, 4*i)))
		v16 := widenBF16x16(vp, i)
		if !allFinite(b16, v16) {
			break
		}
		changed += bits.OnesCount16(b16.NotEqual(v16).ToBits())
		bb, vv, dd, bv, absD, maxAbsD = step8(f32x8At(bp, i), v16.GetLo().ConvertToFloat64(), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*i)), (*[8]float64)(unsafe.Add(cbb, 8*i)))
		bb, vv, dd, bv, absD, maxAbsD = step8(f32x8At(bp, i+8), v16.GetHi().ConvertToFloat64(), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*(i+8))), (*[8]float64)(unsafe.Add(cbb, 8*(i+8))))
	}
	a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD = bb, vv, dd, bv, absD, maxAbsD
	a.changed += changed
	return i
}

func (a *avx512Acc) runF32F32(bp, vp, cdd, cbb unsafe.Pointer, i, end int) int {
	bb, vv, dd, bv, absD, maxAbsD := a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD
	changed := 0
	for ; i < end; i += 16 {
		b16 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(bp, 4*i)))
		v16 := archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(vp, 4*i)))
		if !allFinite(b16, v16) {
			break
		}
		changed += bits.OnesCount16(b16.NotEqual(v16).ToBits())
		bb, vv, dd, bv, absD, maxAbsD = step8(f32x8At(bp, i), f32x8At(vp, i), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*i)), (*[8]float64)(unsafe.Add(cbb, 8*i)))
		bb, vv, dd, bv, absD, maxAbsD = step8(f32x8At(bp, i+8), f32x8At(vp, i+8), bb, vv, dd, bv, absD, maxAbsD,
			(*[8]float64)(unsafe.Add(cdd, 8*(i+8))), (*[8]float64)(unsafe.Add(cbb, 8*(i+8))))
	}
	a.bb, a.vv, a.dd, a.bv, a.absD, a.maxAbsD = bb, vv, dd, bv, absD, maxAbsD
	a.changed += changed
	return i
}

// reduce8 is reduceLanes in three vector adds: lanes 0–3 plus lanes 4–7 gives
// the (a[k] + a[k+4]) pairs, the low two of those plus the high two gives
// reduceLanes's two halves, and their sum is its result, add for add. (Storing
// the vector and adding eight scalars reloaded them through a store-forward
// stall, and took 5 % of a BF16 analysis.)
func reduce8(x archsimd.Float64x8) float64 {
	s := x.GetLo().Add(x.GetHi())
	t := s.GetLo().Add(s.GetHi())
	return t.GetElem(0) + t.GetElem(1)
}

// max8 is maxLane on a vector. Its lanes are |d| of finite elements (or +0):
// never NaN nor −0, so the instruction's max is Go's max.
func max8(x archsimd.Float64x8) float64 {
	s := x.GetLo().Max(x.GetHi())
	t := s.GetLo().Max(s.GetHi())
	return max(t.GetElem(0), t.GetElem(1))
}

// widenBF16AVX2 zero-extends 8 codes to 32 bits and shifts them into the top
// half: the same bits as widenBF16Scalar.
func widenBF16AVX2(dst []float32, src []byte) {
	n := len(dst)
	src = src[:2*n]
	i := 0
	for ; i+8 <= n; i += 8 {
		codes := archsimd.LoadUint8x16((*[16]uint8)(src[2*i : 2*i+16])).AsUint16x8()
		codes.ExtendToUint32().ShiftAllLeft(16).AsFloat32x8().Store((*[8]float32)(dst[i : i+8]))
	}
	archsimd.ClearAVXUpperBits() // see leaveAVX
	widenBF16Scalar(dst[i:], src[2*i:])
}

// widenF16AVX2 is halfToFloat32Bits on 8 codes at once (archsimd has no F16C
// conversion): the three cases are computed for every lane and merged by mask.
// Subnormals use the exact trick (2⁻¹⁴·(1+m/1024)) − 2⁻¹⁴ = m·2⁻²⁴, which only
// touches normal float32 values.
func widenF16AVX2(dst []float32, src []byte) {
	n := len(dst)
	src = src[:2*n]
	expMask := archsimd.BroadcastUint32x8(0x7c00 << 13)
	zero := archsimd.BroadcastUint32x8(0)
	magic := archsimd.BroadcastUint32x8(113 << 23)
	twoPowMinus14 := archsimd.BroadcastFloat32x8(0x1p-14)
	i := 0
	for ; i+8 <= n; i += 8 {
		h := archsimd.LoadUint8x16((*[16]uint8)(src[2*i : 2*i+16])).AsUint16x8().ExtendToUint32()
		sign := h.ShiftAllRight(15).ShiftAllLeft(31)
		shifted := h.ShiftAllLeft(17).ShiftAllRight(4) // (h & 0x7fff) << 13
		exp := shifted.And(expMask)
		normal := shifted.Add(archsimd.BroadcastUint32x8((127 - 15) << 23))
		special := shifted.Or(archsimd.BroadcastUint32x8(0x7f800000))
		sub := shifted.Add(magic).AsFloat32x8().Sub(twoPowMinus14).AsUint32x8()
		out := normal.Merge(special, exp.NotEqual(expMask)).Merge(sub, exp.NotEqual(zero))
		out.Or(sign).AsFloat32x8().Store((*[8]float32)(dst[i : i+8]))
	}
	archsimd.ClearAVXUpperBits() // see leaveAVX
	widenF16Scalar(dst[i:], src[2*i:])
}

// changedBF16AVX2 is changedBF16Scalar on 8 elements at once: roundToBF16 on
// every lane, NaN lanes of b kept as they are by a merge, then a float compare
// (so −0 equals +0) that does not count lanes NaN on both sides.
func changedBF16AVX2(b, v []byte) int64 {
	n := len(v) / 2
	one, half := archsimd.BroadcastUint32x8(1), archsimd.BroadcastUint32x8(0x7fff)
	top := archsimd.BroadcastUint32x8(0xffff0000)
	changed := 0
	i := 0
	for ; i+8 <= n; i += 8 {
		bf := archsimd.LoadFloat32x8((*[8]float32)(unsafe.Pointer(&b[4*i : 4*i+32][0])))
		u := bf.AsUint32x8()
		rounded := u.Add(half).Add(u.ShiftAllRight(16).And(one)).And(top)
		r := rounded.Merge(u, bf.Equal(bf)).AsFloat32x8() // a NaN base stays as it is
		vf := archsimd.LoadUint8x16((*[16]uint8)(v[2*i : 2*i+16])).AsUint16x8().ExtendToUint32().ShiftAllLeft(16).AsFloat32x8()
		differ := r.NotEqual(vf).ToBits()
		bothNaN := r.NotEqual(r).ToBits() & vf.NotEqual(vf).ToBits()
		changed += bits.OnesCount8(differ &^ bothNaN)
	}
	archsimd.ClearAVXUpperBits() // see leaveAVX
	return int64(changed) + changedBF16Scalar(b[4*i:], v[2*i:])
}

// maxLane is the largest of the eight lane maxima.
func maxLane(a *[lanes]float64) float64 {
	m := a[0]
	for _, x := range a[1:] {
		m = max(m, x)
	}
	return m
}
