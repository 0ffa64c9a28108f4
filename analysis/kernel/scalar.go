package kernel

import (
	"encoding/binary"
	"math"
)

// lanes is the number of float64 accumulators per sum: element k of a segment
// goes to lane k mod lanes. It matches two AVX2 Float64x4 vectors, or one
// AVX-512 Float64x8, so every path adds the same numbers in the same order.
const lanes = 8

// reduceLanes is the one reduction tree all paths use to fold lanes into a sum.
func reduceLanes(a *[lanes]float64) float64 {
	return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

func float32frombits(u uint32) float32 { return math.Float32frombits(u) }

func isFinite32(x float32) bool {
	return math.Float32bits(x)&0x7fffffff < 0x7f800000
}

// laneSums holds the per-lane partial sums of one segment.
type laneSums struct {
	bb, vv, dd, bv, absD [lanes]float64
}

// scalarAcc is one segment's statistics in the making: lane sums, counters, max.
type scalarAcc struct {
	lane                                 laneSums
	changed, nonFiniteBase, nonFiniteVLA int64
	maxAbsD                              float64
}

// add folds elements into the segment: b[i] is element k+i of the segment, k
// being a multiple of lanes (all the elements added before), so element k+i
// lands in lane i mod lanes, as in one pass over the whole segment.
//
// This is the reference order that the SIMD paths reproduce. Every product is
// wrapped in float64(...): the spec lets the compiler fuse x*y+z into one FMA
// (GOAMD64=v3 does), and an explicit conversion forbids it. Products of two
// float32 values are exact in float64 anyway; d*d is the one that is not.
func (a *scalarAcc) add(b, v []float32, colDD, colBB []float64) {
	n := len(b)
	v, colDD, colBB = v[:n], colDD[:n], colBB[:n]
	acc := &a.lane
	// Counters and the max are locals, not fields of a struct in memory: a
	// loop-carried store/load per element would cost more than all the math.
	changed, nonFiniteBase, nonFiniteVLA, maxAbsD := a.changed, a.nonFiniteBase, a.nonFiniteVLA, a.maxAbsD
	for i := range n {
		j := i % lanes
		bi, vi := b[i], v[i]
		finiteB, finiteV := isFinite32(bi), isFinite32(vi)
		if !finiteB {
			nonFiniteBase++
		}
		if !finiteV {
			nonFiniteVLA++
		}
		if !finiteB || !finiteV {
			// Zeroing (rather than skipping) keeps the adds identical to the SIMD
			// paths, which cannot skip a lane.
			bi, vi = 0, 0
		}
		bd, vd := float64(bi), float64(vi)
		d := vd - bd
		// d != 0 exactly when bi != vi (both finite here); written as a select
		// rather than an increment in a branch, which mispredicts on real data
		// where a good fraction of elements do not change.
		var change int64
		if d != 0 {
			change = 1
		}
		changed += change
		dd := float64(d * d)
		bb := float64(bd * bd)
		absD := math.Abs(d)
		acc.bb[j] += bb
		acc.vv[j] += float64(vd * vd)
		acc.dd[j] += dd
		acc.bv[j] += float64(bd * vd)
		acc.absD[j] += absD
		if absD > maxAbsD { // no NaN reaches here, so this is max()
			maxAbsD = absD
		}
		colDD[i] += dd
		colBB[i] += bb
	}
	a.changed, a.nonFiniteBase, a.nonFiniteVLA, a.maxAbsD = changed, nonFiniteBase, nonFiniteVLA, maxAbsD
}

func (a *scalarAcc) sums() rowSums {
	s := rowSums{maxAbsD: a.maxAbsD, changed: a.changed, nonFiniteBase: a.nonFiniteBase, nonFiniteVLA: a.nonFiniteVLA}
	s.bb = reduceLanes(&a.lane.bb)
	s.vv = reduceLanes(&a.lane.vv)
	s.dd = reduceLanes(&a.lane.dd)
	s.bv = reduceLanes(&a.lane.bv)
	s.absD = reduceLanes(&a.lane.absD)
	return s
}

// rowScalarF32 is the scalar path on float32 values (Row).
func rowScalarF32(b, v []float32, colDD, colBB []float64) rowSums {
	var a scalarAcc
	a.add(b, v, colDD, colBB)
	return a.sums()
}

// scalarChunk is how many elements rowScalar decodes at once, into buffers on
// the stack (a multiple of lanes, so chunks keep every element's lane).
const scalarChunk = 512

// rowScalar is the scalar path on stored bytes (RowRaw): decode a chunk, fold
// it, next chunk; the same adds in the same order as one pass.
func rowScalar(be Encoding, b []byte, ve Encoding, v []byte, colDD, colBB []float64) rowSums {
	n := len(colDD)
	var a scalarAcc
	var bbuf, vbuf [scalarChunk]float32
	for i := 0; i < n; i += scalarChunk {
		m := min(scalarChunk, n-i)
		decodeInto(bbuf[:m], be, b[i*be.Size():])
		decodeInto(vbuf[:m], ve, v[i*ve.Size():])
		a.add(bbuf[:m], vbuf[:m], colDD[i:i+m], colBB[i:i+m])
	}
	return a.sums()
}

// decodeInto fills dst with the first len(dst) elements of src, stored as e.
func decodeInto(dst []float32, e Encoding, src []byte) {
	if e == BF16 {
		widenBF16Scalar(dst, src[:2*len(dst)])
		return
	}
	src = src[:4*len(dst)]
	if e == F32AsBF16 {
		for i := range dst {
			dst[i] = math.Float32frombits(roundToBF16(binary.LittleEndian.Uint32(src[4*i:])))
		}
		return
	}
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func widenBF16Scalar(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

func widenF16Scalar(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(halfToFloat32Bits(binary.LittleEndian.Uint16(src[2*i:])))
	}
}

// halfToFloat32Bits converts an IEEE half to float32 bits exactly. NaN payloads
// move to the top of the float32 mantissa unchanged (a signalling NaN stays
// signalling), which the SIMD path reproduces bit for bit.
func halfToFloat32Bits(h uint16) uint32 {
	sign := uint32(h&0x8000) << 16
	expMan := uint32(h & 0x7fff)
	switch {
	case expMan >= 0x7c00: // Inf or NaN: all-ones exponent, payload kept
		return sign | 0x7f800000 | (expMan&0x3ff)<<13
	case expMan >= 0x0400: // normal: rebias the exponent from 15 to 127
		return sign | (expMan<<13 + (127-15)<<23)
	default: // zero or subnormal: expMan × 2⁻²⁴, exact in float32
		return sign | math.Float32bits(float32(expMan)*0x1p-24)
	}
}

// roundToBF16 rounds an F32 code to the nearest BF16 value, ties to even, as
// float32 bits; a NaN is returned unchanged.
func roundToBF16(u uint32) uint32 {
	if u&0x7fffffff > 0x7f800000 { // NaN (an integer test: no float compare in the hot loop)
		return u
	}
	u += 0x7fff + (u>>16)&1 // may carry into the exponent: rounds up to the next binade or to Inf
	return u &^ 0xffff
}

func changedBF16Scalar(b, v []byte) int64 {
	var n int64
	for i := range len(v) / 2 {
		r := math.Float32frombits(roundToBF16(binary.LittleEndian.Uint32(b[4*i:])))
		vi := BF16.decode(v, i)
		if r != vi && !(r != r && vi != vi) {
			n++
		}
	}
	return n
}
