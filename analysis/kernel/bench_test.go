package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkRow reports bytes/s as if the input were a BF16 pair (4 bytes per
// element), the rate to compare with reading the files. The column
// accumulators are a full row wide, as in the engine.
func BenchmarkRow(b *testing.B) {
	for _, n := range []int{4096, 11008} {
		rng := rand.New(rand.NewPCG(7, uint64(n)))
		base, vla := finitePair(rng, n)
		colDD, colBB := make([]float64, n), make([]float64, n)
		for _, im := range benchImpls() {
			b.Run(fmt.Sprintf("%s/n=%d", im.name, n), func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				var t Totals
				for b.Loop() {
					rowWith(im, &t, base, vla, colDD, colBB)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
			})
		}
	}
}

// finitePair is randomPair without its specials: real weights are finite, and
// the SIMD paths only pay for masking in blocks that hold a NaN or an Inf.
func finitePair(rng *rand.Rand, n int) (b, v []float32) {
	b, v = randomPair(rng, n)
	for i := range n {
		if !isFinite32(b[i]) {
			b[i] = 1
		}
		if !isFinite32(v[i]) {
			v[i] = 2
		}
	}
	return b, v
}

// BenchmarkWidenBF16 reports source bytes/s for a 11008-element row.
func BenchmarkWidenBF16(b *testing.B) {
	benchWiden(b, func(im impl) func([]float32, []byte) { return im.widenBF16 })
}

func BenchmarkWidenF16(b *testing.B) {
	benchWiden(b, func(im impl) func([]float32, []byte) { return im.widenF16 })
}

func benchWiden(b *testing.B, pick func(impl) func([]float32, []byte)) {
	const n = 11008
	src := allCodes(0)[:2*n]
	dst := make([]float32, n)
	for _, im := range benchImpls() {
		widen := pick(im)
		b.Run(im.name, func(b *testing.B) {
			b.SetBytes(2 * n)
			for b.Loop() {
				widen(dst, src)
			}
		})
	}
}

// benchImpls names the paths "simd-<isa>" and "scalar" for the sub-benchmarks.
func benchImpls() []impl {
	var out []impl
	for _, im := range simdImpls {
		im.name = "simd-" + im.name
		out = append(out, im)
	}
	return append(out, scalarImpl)
}

// BenchmarkRowRaw reads the pair from its stored bytes, as the engine does with
// mapped files: BF16 on both sides (a BF16 fine-tune of a BF16 base) and F32
// base against BF16 VLA (π0.5, OpenVLA). Bytes/s count both sides' stored bytes.
func BenchmarkRowRaw(b *testing.B) {
	const n = 2048
	rng := rand.New(rand.NewPCG(9, n))
	base, vla := finitePair(rng, n)
	colDD, colBB := make([]float64, n), make([]float64, n)
	for _, enc := range []struct {
		name   string
		be, ve Encoding
	}{{"bf16xbf16", BF16, BF16}, {"f32xbf16", F32, BF16}, {"f32asbf16xbf16", F32AsBF16, BF16}, {"f32xf32", F32, F32}} {
		braw, vraw := encode(enc.be, base), encode(enc.ve, vla)
		for _, im := range benchImpls() {
			b.Run(fmt.Sprintf("%s/%s", enc.name, im.name), func(b *testing.B) {
				b.SetBytes(int64(len(braw) + len(vraw)))
				var t Totals
				for b.Loop() {
					rowRawWith(im, &t, enc.be, braw, enc.ve, vraw, colDD, colBB)
				}
				b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
			})
		}
	}
}
