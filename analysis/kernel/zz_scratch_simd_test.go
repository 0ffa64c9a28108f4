//go:build goexperiment.simd && amd64

package kernel

import (
	"math/bits"
	"simd/archsimd"
)

func init() { extraImpls = append(extraImpls, impl{name: "avx2-1pass", row: rowAVX2OnePass, widenBF16: widenBF16AVX2, widenF16: widenF16AVX2}) }

func rowAVX2OnePass(b, v []float32, colDD, colBB []float64) rowSums {
	n := len(b)
	v, colDD, colBB = v[:n], colDD[:n], colBB[:n]
	magnitude, inf := archsimd.BroadcastInt32x8(magnitudeBits), archsimd.BroadcastInt32x8(infBits)
	absMask := archsimd.BroadcastUint64x4(absBits64)
	var bbLo, bbHi, vvLo, vvHi, ddLo, ddHi, bvLo, bvHi, adLo, adHi, mxLo, mxHi archsimd.Float64x4
	var changed, nonFiniteBase, nonFiniteVLA int
	for i := 0; i+8 <= n; i += 8 {
		b8, v8 := archsimd.LoadFloat32x8((*[8]float32)(b[i:i+8])), archsimd.LoadFloat32x8((*[8]float32)(v[i:i+8]))
		finiteB := inf.Greater(b8.AsInt32x8().And(magnitude))
		finiteV := inf.Greater(v8.AsInt32x8().And(magnitude))
		nonFiniteBase += bits.OnesCount32(uint32(^finiteB.ToBits()))
		nonFiniteVLA += bits.OnesCount32(uint32(^finiteV.ToBits()))
		ok := finiteB.And(finiteV)
		b8, v8 = b8.Masked(ok), v8.Masked(ok)
		changed += bits.OnesCount32(uint32(b8.NotEqual(v8).ToBits()))
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
	s := rowSums{changed: int64(changed), nonFiniteBase: int64(nonFiniteBase), nonFiniteVLA: int64(nonFiniteVLA)}
	s.bb = reduce4x2(bbLo, bbHi)
	s.vv = reduce4x2(vvLo, vvHi)
	s.dd = reduce4x2(ddLo, ddHi)
	s.bv = reduce4x2(bvLo, bvHi)
	s.absD = reduce4x2(adLo, adHi)
	return s
}
