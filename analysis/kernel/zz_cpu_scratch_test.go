package kernel

import (
	"fmt"
	"math"
	"os"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
)

func threadCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_THREAD, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

var extraImpls []impl

func TestZZCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, n := range []int{4096, 11008} {
		rng := rand.New(rand.NewPCG(7, uint64(n)))
		base, vla := randomPair(rng, n)
		if os.Getenv("NOSPECIAL") != "" {
			for i := range base {
				if !isFinite32(base[i]) || base[i] != 0 && math.Abs(float64(base[i])) < 1e-37 {
					base[i] = 1
				}
				if !isFinite32(vla[i]) || vla[i] != 0 && math.Abs(float64(vla[i])) < 1e-37 {
					vla[i] = 2
				}
			}
		}
		colDD, colBB := make([]float64, n), make([]float64, n)
		for _, im := range append(benchImpls(), extraImpls...) {
			best := 1e18
			for rep := 0; rep < 3; rep++ {
				var tt Totals
				iters := 100000000 / n
				c0 := threadCPU()
				for range iters {
					rowWith(im, &tt, base, vla, colDD, colBB)
				}
				ns := float64(threadCPU()-c0) / float64(iters*n)
				best = min(best, ns)
			}
			fmt.Printf("row %-12s n=%5d  %.3f ns/elem  %.2f Gelem/s  %.2f GB/s(bf16 pair)\n", im.name, n, best, 1/best, 4/best)
		}
	}
	src := allCodes(0)[:2*11008]
	dst := make([]float32, 11008)
	for _, im := range benchImpls() {
		for _, w := range []struct{ name string; f func([]float32, []byte) }{{"bf16", im.widenBF16}, {"f16", im.widenF16}} {
			best := 1e18
			for rep := 0; rep < 3; rep++ {
				iters := 20000
				c0 := threadCPU()
				for range iters {
					w.f(dst, src)
				}
				best = min(best, float64(threadCPU()-c0)/float64(iters*11008))
			}
			fmt.Printf("widen %s %-12s %.3f ns/elem  %.2f GB/s src\n", w.name, im.name, best, 2/best)
		}
	}
}
