//go:build goexperiment.simd && amd64

package analysis

import (
	"simd/archsimd"
	"unsafe"
)

// Constants sumWordsAVX2 reads from memory: Go's register allocator gives SIMD
// values 15 registers, which the loop needs for its sums and temporaries.
var (
	fpKeysA = [4]uint64{fpKeyA, fpKeyA, fpKeyA, fpKeyA}
	fpKeysB = [4]uint64{fpKeyB, fpKeyB, fpKeyB, fpKeyB}
	fpLow32 = [4]uint64{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}
	// fpSteps are 4·fpMulA and 4·fpMulB (mod 2⁶⁴), the keys' step per 4 words.
	fpStepA, fpStepB = func() ([4]uint64, [4]uint64) {
		a, b := uint64(fpMulA), uint64(fpMulB)
		return [4]uint64{4 * a, 4 * a, 4 * a, 4 * a}, [4]uint64{4 * b, 4 * b, 4 * b, 4 * b}
	}()
)

// sumWordsVector is sumWords on the CPU's vector unit when it has AVX2:
// wordSum.add's 64×64→128-bit product is four 32×32→64-bit products per lane
// (VPMULUDQ, which reads the low half of each 64-bit lane) and their carries,
// four words at a time. Integer sums wrap and commute, so the lanes' sums
// added together are sumWords's bit for bit (TestSumWordsVectorMatches).
var sumWordsVector = func() func(sum *wordSum, k uint64, data []byte) {
	if archsimd.X86.AVX2() {
		return sumWordsAVX2
	}
	return nil
}()

func sumWordsAVX2(sum *wordSum, k uint64, data []byte) {
	n := len(data) / 32
	if n == 0 {
		sumWordsScalar(sum, k, data)
		return
	}
	defer archsimd.ClearAVXUpperBits() // dirty upper halves slow the SSE code Go emits elsewhere
	mA, mB := uint64(fpMulA), uint64(fpMulB)
	ka := [4]uint64{k * mA, (k + 1) * mA, (k + 2) * mA, (k + 3) * mA}
	kb := [4]uint64{k * mB, (k + 1) * mB, (k + 2) * mB, (k + 3) * mB}
	iA, iB := archsimd.LoadUint64x4(&ka), archsimd.LoadUint64x4(&kb)
	var a, b archsimd.Uint64x4
	p := unsafe.Pointer(unsafe.SliceData(data))
	for j := range n {
		w := archsimd.LoadUint64x4((*[4]uint64)(unsafe.Add(p, 32*j)))
		x := w.Xor(iA).Xor(archsimd.LoadUint64x4(&fpKeysA))
		y := w.ShiftAllLeft(29).Or(w.ShiftAllRight(35)).Xor(iB).Xor(archsimd.LoadUint64x4(&fpKeysB))
		xh, yh := x.ShiftAllRight(32), y.ShiftAllRight(32)
		p0 := x.AsUint32x8().MulEvenWiden(y.AsUint32x8())   // xl·yl
		p1 := x.AsUint32x8().MulEvenWiden(yh.AsUint32x8())  // xl·yh
		p2 := xh.AsUint32x8().MulEvenWiden(y.AsUint32x8())  // xh·yl
		p3 := xh.AsUint32x8().MulEvenWiden(yh.AsUint32x8()) // xh·yh
		low := archsimd.LoadUint64x4(&fpLow32)
		mid := p0.ShiftAllRight(32).Add(p1.And(low)).Add(p2.And(low)) // < 3·2³², no carry out
		lo := mid.ShiftAllLeft(32).Or(p0.And(low))
		hi := p3.Add(p1.ShiftAllRight(32)).Add(p2.ShiftAllRight(32)).Add(mid.ShiftAllRight(32))
		a = a.Add(hi.Xor(lo))
		b = b.Add(lo.Add(hi.ShiftAllLeft(17).Or(hi.ShiftAllRight(47))))
		iA, iB = iA.Add(archsimd.LoadUint64x4(&fpStepA)), iB.Add(archsimd.LoadUint64x4(&fpStepB))
	}
	var sa, sb [4]uint64
	a.Store(&sa)
	b.Store(&sb)
	sum.a += sa[0] + sa[1] + sa[2] + sa[3]
	sum.b += sb[0] + sb[1] + sb[2] + sb[3]
	sumWordsScalar(sum, k+uint64(4*n), data[32*n:])
}
