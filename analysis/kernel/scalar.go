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

func maxLane(a *[lanes]float64) float64 {
	m := a[0]
	for _, x := range a[1:] {
		m = max(m, x)
	}
	return m
}

func isFinite32(x float32) bool {
	return math.Float32bits(x)&0x7fffffff < 0x7f800000
}

// laneSums holds the per-lane partial sums of one segment.
type laneSums struct {
	bb, vv, dd, bv, absD [lanes]float64
}

// rowScalar is the reference order that the SIMD paths reproduce. Every product
// is wrapped in float64(...): the spec lets the compiler fuse x*y+z into one FMA
// (GOAMD64=v3 does), and an explicit conversion forbids it. Products of two
// float32 values are exact in float64 anyway; d*d is the one that is not.
func rowScalar(b, v []float32, colDD, colBB []float64) rowSums {
	n := len(b)
	v, colDD, colBB = v[:n], colDD[:n], colBB[:n]
	var acc laneSums
	// Counters and the max are locals, not fields of a struct in memory: a
	// loop-carried store/load per element would cost more than all the math.
	var changed, nonFiniteBase, nonFiniteVLA int64
	var maxAbsD float64
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
	s := rowSums{maxAbsD: maxAbsD, changed: changed, nonFiniteBase: nonFiniteBase, nonFiniteVLA: nonFiniteVLA}
	s.bb = reduceLanes(&acc.bb)
	s.vv = reduceLanes(&acc.vv)
	s.dd = reduceLanes(&acc.dd)
	s.bv = reduceLanes(&acc.bv)
	s.absD = reduceLanes(&acc.absD)
	return s
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
