// Package compare measures how alike two analyses' unit scores are: the rank
// correlation (Spearman) of the scores of the same units, and the overlap of
// the units each analysis changed most. Two VLAs fine-tuned from one base, or
// one VLA at two training steps, may move the same channels (high ρ, large
// overlap) or different ones; a pruning recipe tuned on one transfers to the
// other only in the first case.
package compare

import (
	"cmp"
	"math"
	"slices"

	"github.com/deltascope/deltascope/analysis"
)

// Ranks returns the 1-based ranks of x, ascending, where tied values share
// the average of the ranks they span (so [10, 20, 20, 30] ranks [1, 2.5, 2.5,
// 4]): the standard treatment that keeps Spearman's ρ exact with ties. x must
// hold no NaN (Spearman drops them first).
func Ranks(x []float64) []float64 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(x[a], x[b]) })
	r := make([]float64, len(x))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && x[idx[j]] == x[idx[i]] {
			j++
		}
		// positions i..j-1 (0-based) hold ranks i+1..j: their mean is (i+1+j)/2
		avg := float64(i+1+j) / 2
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

// Spearman is the rank correlation of paired values: the Pearson correlation
// of their average ranks. Pairs with a NaN on either side are left out; n is
// how many pairs were used. ρ is NaN with fewer than two pairs or when one
// side is constant (no ranking to correlate).
func Spearman(x, y []float64) (rho float64, n int) {
	m := min(len(x), len(y))
	xs, ys := make([]float64, 0, m), make([]float64, 0, m)
	for i := range m {
		if !math.IsNaN(x[i]) && !math.IsNaN(y[i]) {
			xs, ys = append(xs, x[i]), append(ys, y[i])
		}
	}
	n = len(xs)
	if n < 2 {
		return math.NaN(), n
	}
	return pearson(Ranks(xs), Ranks(ys)), n
}

func pearson(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return math.NaN()
	}
	return max(-1, min(1, sxy/math.Sqrt(sxx*syy)))
}

// K is the size of a top fraction of n units: int(n·frac) as the paper prunes,
// but at least one unit when there are units and frac > 0, so a small module
// still has something to compare.
func K(n int, frac float64) int {
	if n <= 0 || !(frac > 0) {
		return 0
	}
	return min(n, max(1, int(float64(n)*frac)))
}

// TopK returns the indices of the k largest values, largest first; NaN is
// never chosen, and equal values go to the lower index (a fixed, documented
// choice, so the overlap does not depend on sort internals).
func TopK(x []float64, k int) []int {
	idx := make([]int, 0, len(x))
	for i, v := range x {
		if !math.IsNaN(v) {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(x[b], x[a]) })
	return idx[:min(max(k, 0), len(idx))]
}

// Overlap compares two top-k sets.
type Overlap struct {
	K       int     `json:"k"`
	Common  int     `json:"common"`  // units in both top-k sets
	Jaccard float64 `json:"jaccard"` // common / union; NaN when k is 0
}

// TopKOverlap compares the k most-changed units (highest scores) of a and b,
// paired by index.
func TopKOverlap(a, b []float64, k int) Overlap {
	ta, tb := TopK(a, k), TopK(b, k)
	in := make(map[int]bool, len(ta))
	for _, i := range ta {
		in[i] = true
	}
	o := Overlap{K: k}
	for _, i := range tb {
		if in[i] {
			o.Common++
		}
	}
	union := len(ta) + len(tb) - o.Common
	o.Jaccard = math.NaN()
	if union > 0 {
		o.Jaccard = float64(o.Common) / float64(union)
	}
	return o
}

// DefaultTopFraction is the share of units the overlap looks at by default.
const DefaultTopFraction = 0.10

// Module compares one module family (component × unit kind) of two analyses.
type Module struct {
	Component string `json:"component"`
	Kind      string `json:"kind"`   // ffn_channel | attn_head
	Layers    int    `json:"layers"` // layers both analyses score
	Units     int    `json:"units"`  // units paired (same layer, same index)
	// OnlyA and OnlyB count units one side scores and the other does not
	// (a layer or trailing indices missing): they are left out of ρ and top-k.
	OnlyA    int     `json:"only_a"`
	OnlyB    int     `json:"only_b"`
	Spearman float64 `json:"spearman"` // over every paired unit of every layer
	Overlap
}

// Modules compares every module family both analyses score. Units of all
// layers are ranked together, as the paper ranks them for pruning ("global"),
// and the top fraction frac of the paired units is compared. Families in a's
// order; a family only one side has is not listed.
func Modules(a, b []analysis.UnitScores, frac float64) []Module {
	type fam struct{ comp, kind string }
	byLayer := func(us []analysis.UnitScores) (map[fam]map[int][]float32, []fam) {
		out := map[fam]map[int][]float32{}
		var order []fam
		for _, u := range us {
			f := fam{u.Component, u.Kind}
			if out[f] == nil {
				out[f] = map[int][]float32{}
				order = append(order, f)
			}
			out[f][u.Layer] = u.Scores
		}
		return out, order
	}
	la, order := byLayer(a)
	lb, _ := byLayer(b)
	var out []Module
	for _, f := range order {
		sb, ok := lb[f]
		if !ok {
			continue
		}
		sa := la[f]
		m := Module{Component: f.comp, Kind: f.kind}
		layers := make([]int, 0, len(sa))
		for l := range sa {
			layers = append(layers, l)
		}
		slices.Sort(layers)
		var xa, xb []float64
		for _, l := range layers {
			ua, ub := sa[l], sb[l]
			if ub == nil {
				m.OnlyA += len(ua)
				continue
			}
			m.Layers++
			n := min(len(ua), len(ub))
			m.OnlyA += len(ua) - n
			m.OnlyB += len(ub) - n
			for i := range n {
				xa, xb = append(xa, float64(ua[i])), append(xb, float64(ub[i]))
			}
		}
		for l, ub := range sb {
			if sa[l] == nil {
				m.OnlyB += len(ub)
			}
		}
		m.Units = len(xa)
		m.Spearman, _ = Spearman(xa, xb)
		m.Overlap = TopKOverlap(xa, xb, K(m.Units, frac))
		out = append(out, m)
	}
	return out
}
