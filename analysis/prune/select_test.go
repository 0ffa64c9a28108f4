package prune

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestKthSmallest(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name string
		keys func(n int) []uint64
	}{
		{"random", func(n int) []uint64 {
			k := make([]uint64, n)
			for i := range k {
				k[i] = rng.Uint64()>>32<<32 | uint64(i)
			}
			return k
		}},
		{"sorted", func(n int) []uint64 {
			k := make([]uint64, n)
			for i := range k {
				k[i] = uint64(i)
			}
			return k
		}},
		{"reversed", func(n int) []uint64 {
			k := make([]uint64, n)
			for i := range k {
				k[i] = uint64(n - i)
			}
			return k
		}},
		{"equal scores", func(n int) []uint64 {
			k := make([]uint64, n)
			for i := range k {
				k[i] = 7<<32 | uint64(i)
			}
			rng.Shuffle(n, func(a, b int) { k[a], k[b] = k[b], k[a] })
			return k
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []int{1, 2, 3, 10, 1000} {
				keys := tc.keys(n)
				sorted := slices.Sorted(slices.Values(keys))
				for _, k := range []int{1, n / 2, n} {
					if k < 1 {
						continue
					}
					if got := kthSmallest(slices.Clone(keys), k); got != sorted[k-1] {
						t.Errorf("n=%d k=%d: got %d, want %d", n, k, got, sorted[k-1])
					}
				}
			}
		})
	}
}

func TestOrderedKeepsFloatOrder(t *testing.T) {
	vals := []float32{float32(math.Inf(-1)), -3, -1e-30, 0, 1e-30, 2, float32(math.Inf(1))}
	for i := 1; i < len(vals); i++ {
		if ordered(vals[i-1]) >= ordered(vals[i]) {
			t.Errorf("ordered(%g) >= ordered(%g)", vals[i-1], vals[i])
		}
	}
	if ordered(float32(math.Copysign(0, -1))) != ordered(0) {
		t.Error("-0 and +0 should tie")
	}
	if ordered(float32(math.NaN())) != 0 {
		t.Error("NaN should rank lowest")
	}
}

func TestRoundKept(t *testing.T) {
	for _, tc := range []struct{ kept, n, to, want int }{
		{100, 128, 64, 128}, {95, 128, 64, 64}, {96, 128, 64, 128}, {3, 128, 64, 64}, {0, 128, 64, 0}, {120, 120, 64, 120},
	} {
		if got := roundKept(tc.kept, tc.n, tc.to); got != tc.want {
			t.Errorf("roundKept(%d, %d, %d) = %d, want %d", tc.kept, tc.n, tc.to, got, tc.want)
		}
	}
}
