package prune

import (
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Selection works on 64-bit keys: the high 32 bits order the units from first to
// prune to last (the score, flipped for "highest"), the low 32 bits are the
// unit's position in (layer, index) order, which breaks ties and makes every key
// distinct. The k units to prune are then exactly those whose key is at most the
// k-th smallest key, found by selection in O(N) rather than by a full sort.

// ordered maps a float32 to a uint32 of the same order. NaN ranks as the lowest
// score, and -0 as +0, so that equal scores tie and fall back to position.
func ordered(f float32) uint32 {
	if f != f {
		return 0
	}
	if f == 0 {
		f = 0
	}
	b := math.Float32bits(f)
	if b&0x8000_0000 != 0 {
		return ^b
	}
	return b | 0x8000_0000
}

// splitmix64 is a strong 64-bit mixer (Steele et al.), used for the random
// direction so that a unit's draw depends only on (seed, layer, index).
func splitmix64(z uint64) uint64 {
	z += 0x9e37_79b9_7f4a_7c15
	z = (z ^ (z >> 30)) * 0xbf58_476d_1ce4_e5b9
	z = (z ^ (z >> 27)) * 0x94d0_49bb_1331_11eb
	return z ^ (z >> 31)
}

// rank is the high half of a unit's key: smaller is pruned first.
func rank(rule *Rule, g *group, i int) uint32 {
	switch rule.Direction {
	case DirHighest:
		return ^ordered(g.scores[i])
	case DirRandom:
		return uint32(splitmix64(rule.Seed^splitmix64(uint64(g.layer)<<32|uint64(i))) >> 32)
	default: // lowest, magnitude
		return ordered(g.scores[i])
	}
}

// kthSmallest returns the k-th smallest (k ≥ 1) of distinct keys, reordering
// them: quickselect with a median-of-three pivot, falling back to a sort if the
// pivots keep being poor, so the worst case stays O(N log N).
func kthSmallest(keys []uint64, k int) uint64 {
	lo, hi, target := 0, len(keys)-1, k-1
	budget := 2*bits.Len(uint(len(keys))) + 4
	for lo < hi {
		if budget == 0 {
			slices.Sort(keys[lo : hi+1])
			return keys[target]
		}
		budget--
		mid := lo + (hi-lo)/2
		if keys[mid] < keys[lo] {
			keys[mid], keys[lo] = keys[lo], keys[mid]
		}
		if keys[hi] < keys[lo] {
			keys[hi], keys[lo] = keys[lo], keys[hi]
		}
		if keys[hi] < keys[mid] {
			keys[hi], keys[mid] = keys[mid], keys[hi]
		}
		pivot := keys[mid]
		i, j := lo, hi
		for i <= j {
			for keys[i] < pivot {
				i++
			}
			for keys[j] > pivot {
				j--
			}
			if i <= j {
				keys[i], keys[j] = keys[j], keys[i]
				i++
				j--
			}
		}
		switch {
		case target <= j:
			hi = j
		case target >= i:
			lo = i
		default:
			return keys[target]
		}
	}
	return keys[target]
}

// selectUnits marks the pruned units of every group.
func (rs *resolver) selectUnits(rule Rule, groups []*group, st *RuleStats) error {
	if rule.Scope == ScopeLayer {
		for _, g := range groups {
			if g.protected {
				continue
			}
			k := int(float64(g.n) * rule.Ratio)
			st.Target += k
			rs.pickInGroup(&rule, g, k)
		}
	} else {
		st.Target = int(float64(st.Units) * rule.Ratio)
		rs.pickGlobal(&rule, groups, st.Target, st.Units)
	}
	var emptied []string
	for _, g := range groups {
		if g.protected || g.n == 0 {
			continue
		}
		if rule.RoundTo > 1 {
			if kept := roundKept(g.n-g.count, g.n, rule.RoundTo); kept != g.n-g.count {
				rs.pickInGroup(&rule, g, g.n-kept)
			}
		}
		if g.count == g.n {
			emptied = append(emptied, strconv.Itoa(g.layer))
		}
	}
	if len(emptied) > 0 {
		// The authors' code empties a layer whenever the ranking says so (the
		// real OpenVLA's frozen last vision blocks, ΔW = 0, go whole under the
		// "lowest" rules); the exports keep such a layer at width 0.
		rs.warn("rule %s: prunes every unit of layer %s: emptied (the exports keep it at width 0)",
			rule.Module, strings.Join(emptied, ", "))
	}
	return nil
}

// roundKept rounds a layer's kept units to the nearest multiple of to (halves
// round up), at most n, and never to 0 when something was kept.
func roundKept(kept, n, to int) int {
	r := (kept + to/2) / to * to
	if r == 0 && kept > 0 {
		r = to
	}
	return min(r, n)
}

func (rs *resolver) buffer(n int) []uint64 {
	if cap(rs.keys) < n {
		rs.keys = make([]uint64, n)
	}
	return rs.keys[:n]
}

// pickGlobal prunes the k first units of all unprotected groups ranked together.
func (rs *resolver) pickGlobal(rule *Rule, groups []*group, k, total int) {
	if k <= 0 {
		return
	}
	keys := rs.buffer(total)
	pos := 0
	for _, g := range groups {
		if g.protected {
			continue
		}
		for i := range g.n {
			keys[pos] = uint64(rank(rule, g, i))<<32 | uint64(pos)
			pos++
		}
	}
	limit := kthSmallest(keys, k)
	pos = 0
	for _, g := range groups {
		if g.protected {
			continue
		}
		for i := range g.n {
			if uint64(rank(rule, g, i))<<32|uint64(pos) <= limit {
				g.pruned[i] = true
				g.count++
			}
			pos++
		}
	}
}

// pickInGroup prunes the k first units of one group, replacing its selection.
func (rs *resolver) pickInGroup(rule *Rule, g *group, k int) {
	clear(g.pruned)
	g.count = 0
	if k <= 0 {
		return
	}
	keys := rs.buffer(g.n)
	for i := range g.n {
		keys[i] = uint64(rank(rule, g, i))<<32 | uint64(i)
	}
	limit := kthSmallest(keys, k)
	for i := range g.n {
		if uint64(rank(rule, g, i))<<32|uint64(i) <= limit {
			g.pruned[i] = true
			g.count++
		}
	}
}
