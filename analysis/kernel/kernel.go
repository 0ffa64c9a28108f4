// Package kernel is the inner loop of the divergence engine: it folds one row of
// a base/VLA tensor pair into float64 statistics, reading F32 and BF16 elements
// straight from file bytes (RowRaw, widening in registers) or float32 values
// already decoded (Row), and widens the 16-bit dtypes to float32.
//
// Two implementations exist: a SIMD one (simd_amd64.go, built only with
// GOEXPERIMENT=simd on amd64 and chosen at run time when the CPU has the
// instructions it uses; it widens BF16 in registers, 16 elements a step on
// AVX-512) and a scalar one that is always compiled (it decodes stored bytes a
// chunk at a time into stack buffers). They agree bit for bit: both add element
// k of a row into lane k mod 8 of eight float64 accumulators per sum, reduce
// the lanes with the same tree (reduceLanes), never fuse a rounded multiply
// into an add (the AVX-512 path fuses only the exact products b·b, v·v and
// b·v, which gives the bits of a separate multiply and add), and zero
// elements that are not finite on either side before any arithmetic. Results therefore do not depend on which machine
// or build computed them.
package kernel

import "encoding/binary"

// Totals are tensor-wide sums, accumulated in float64.
type Totals struct {
	BB, VV, DD, BV float64 // Σb², Σv², Σd², Σb·v   (d = float64(v) − float64(b))
	AbsD           float64 // Σ|d|
	MaxAbsD        float64
	// Changed counts elements whose value changed (v != b numerically, so −0 → +0
	// is no change); elements with a non-finite side are not counted.
	Changed int64
	// NonFiniteBase and NonFiniteVLA count NaN/Inf elements on each side. An
	// element that is non-finite on either side contributes 0 to every sum, to
	// MaxAbsD, to Changed and to the column accumulators.
	NonFiniteBase, NonFiniteVLA int64
	N                           int64 // elements seen
}

// Merge adds o into t. Floating-point addition is not associative, so callers
// that want reproducible results merge parallel blocks in a fixed order.
func (t *Totals) Merge(o *Totals) {
	t.BB += o.BB
	t.VV += o.VV
	t.DD += o.DD
	t.BV += o.BV
	t.AbsD += o.AbsD
	t.MaxAbsD = max(t.MaxAbsD, o.MaxAbsD)
	t.Changed += o.Changed
	t.NonFiniteBase += o.NonFiniteBase
	t.NonFiniteVLA += o.NonFiniteVLA
	t.N += o.N
}

// Encoding is how the elements handed to RowRaw are stored: little-endian, as
// in safetensors and torch files.
type Encoding uint8

const (
	F32  Encoding = iota // IEEE single
	BF16                 // the top 16 bits of an IEEE single
	// F32AsBF16 is F32 storage read as its BF16 rounding (nearest, ties to
	// even, as torch's .to(torch.bfloat16); NaN kept, past the largest BF16 it
	// is Inf): an F32 base compared at a BF16 VLA's precision, where a frozen
	// tensor then shows no change at all. It costs a few integer operations per
	// element, in registers.
	F32AsBF16
)

// Size is the number of bytes per element.
func (e Encoding) Size() int {
	switch e {
	case F32, F32AsBF16:
		return 4
	case BF16:
		return 2
	}
	panic("kernel: unknown Encoding")
}

// decode returns element i of p.
func (e Encoding) decode(p []byte, i int) float32 {
	switch e {
	case BF16:
		return float32frombits(uint32(binary.LittleEndian.Uint16(p[2*i:])) << 16)
	case F32AsBF16:
		return float32frombits(roundToBF16(binary.LittleEndian.Uint32(p[4*i:])))
	}
	return float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
}

// RowRaw is Row on elements still in their stored encoding: b holds n elements
// encoded as be, v the same n encoded as ve. The result is bit for bit that of
// widening both to float32 and calling Row, without writing the float32 values
// anywhere: the engine hands it slices of the mapped files, so a row goes from
// the page cache to the statistics in one pass. It panics if the lengths
// disagree (a caller bug, not bad input).
func RowRaw(t *Totals, be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) (rowDD, rowBB float64) {
	n := len(b) / be.Size()
	if len(b) != n*be.Size() || len(v) != n*ve.Size() || len(colDD) < n || len(colBB) < n {
		panic("kernel.RowRaw: b, v, colDD and colBB must hold the same number of elements")
	}
	return rowRawWith(active, t, be, b, ve, v, colDD[:n], colBB[:n])
}

// Row adds one row segment: b and v hold the same n elements; colDD[i] += d_i²,
// colBB[i] += b_i² for i < n (the caller passes the column accumulators already
// offset to the segment's first column). It returns the segment's Σd² and Σb²
// (for the per-row norms) and adds everything into t.
//
// Each of the segment's sums is computed from zero and then added to t, so the
// result depends on how the caller cuts rows into segments, never on the CPU.
// Row panics if v, colDD or colBB is shorter than b: that is a caller bug, not
// bad input.
func Row(t *Totals, b, v []float32, colDD, colBB []float64) (rowDD, rowBB float64) {
	n := len(b)
	if len(v) != n || len(colDD) < n || len(colBB) < n {
		panic("kernel.Row: b, v, colDD and colBB must hold the same number of elements")
	}
	return rowWith(active, t, b, v, colDD[:n], colBB[:n])
}

// rowWith is Row on a given code path (tests run every path through it).
func rowWith(im impl, t *Totals, b, v []float32, colDD, colBB []float64) (rowDD, rowBB float64) {
	return addSums(t, im.rowF32(b, v[:len(b)], colDD, colBB), len(b))
}

func rowRawWith(im impl, t *Totals, be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) (rowDD, rowBB float64) {
	return addSums(t, im.row(be, b, ve, v, colDD, colBB), len(colDD))
}

// addSums adds one segment of n elements into t and returns its row sums.
func addSums(t *Totals, s rowSums, n int) (rowDD, rowBB float64) {
	t.BB += s.bb
	t.VV += s.vv
	t.DD += s.dd
	t.BV += s.bv
	t.AbsD += s.absD
	t.MaxAbsD = max(t.MaxAbsD, s.maxAbsD)
	t.Changed += s.changed
	t.NonFiniteBase += s.nonFiniteBase
	t.NonFiniteVLA += s.nonFiniteVLA
	t.N += int64(n)
	return s.dd, s.bb
}

// WidenBF16 decodes little-endian BF16 codes: dst[i] = the float32 whose top 16
// bits are code i (exact, NaN payloads kept). It panics unless
// len(src) == 2*len(dst).
func WidenBF16(dst []float32, src []byte) {
	checkWiden("WidenBF16", dst, src)
	active.widenBF16(dst, src)
}

// WidenF16 decodes little-endian IEEE half codes to float32, exactly: every half
// value (subnormals included) is a float32 value, and NaN payloads are kept
// (shifted into the top of the float32 mantissa, not quieted). It panics unless
// len(src) == 2*len(dst).
func WidenF16(dst []float32, src []byte) {
	checkWiden("WidenF16", dst, src)
	active.widenF16(dst, src)
}

func checkWiden(name string, dst []float32, src []byte) {
	if len(src) != 2*len(dst) {
		panic("kernel." + name + ": len(src) must be 2*len(dst)")
	}
}

// ChangedBeyondBF16 counts the elements of an F32 base row b that a BF16 VLA
// row v (the same n elements) changed beyond storage rounding: element i counts
// unless rounding b[i] to the nearest BF16 (ties to even, as torch's
// .to(torch.bfloat16)) gives v[i]'s value, with −0 equal to +0 and any NaN
// equal to any NaN; a NaN base stays that NaN. A frozen F32 tensor saved as
// BF16 thus counts no change. It panics unless len(b) == 2*len(v) and len(v)
// is even.
func ChangedBeyondBF16(b, v []byte) int64 {
	if len(v)%2 != 0 || len(b) != 2*len(v) {
		panic("kernel.ChangedBeyondBF16: b must hold F32 codes for v's BF16 codes")
	}
	return active.changedBF16(b, v)
}

// Implementation names the code path Row and the widening functions use on this
// machine and build: "avx512", "avx2" or "scalar". Worth logging next to timings.
func Implementation() string { return active.name }

// rowSums are one segment's statistics, before they are added into Totals.
type rowSums struct {
	bb, vv, dd, bv, absD, maxAbsD        float64
	changed, nonFiniteBase, nonFiniteVLA int64
}

// impl is one complete code path. The row and widen functions may assume their
// arguments have already been length-checked by the exported wrappers; row
// reads len(colDD) elements from b and v, encoded as be and ve.
type impl struct {
	name      string
	row       func(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) rowSums
	rowF32    func(b, v []float32, colDD, colBB []float64) rowSums // Row's float32 rows
	widenBF16 func(dst []float32, src []byte)
	widenF16  func(dst []float32, src []byte)
	// changedBF16 is ChangedBeyondBF16.
	changedBF16 func(b, v []byte) int64
}

var scalarImpl = impl{name: "scalar", row: rowScalar, rowF32: rowScalarF32, widenBF16: widenBF16Scalar, widenF16: widenF16Scalar, changedBF16: changedBF16Scalar}

// simdImpls are the SIMD paths this build and CPU can run, best first.
var simdImpls = detectSIMD()

var active = chooseImpl()

func chooseImpl() impl {
	if len(simdImpls) > 0 {
		return simdImpls[0]
	}
	return scalarImpl
}
