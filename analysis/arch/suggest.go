package arch

import (
	"cmp"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Suggestion is a --map rule that would pair tensors an alignment left
// unmatched: a rewrite of the base prefix From into the VLA prefix To, under
// which Pairs base-only tensors become the name of a VLA-only tensor with the
// same shape. Example is one such pair, for the reader.
type Suggestion struct {
	Rule        string `json:"rule"` // 'REGEX=>REPLACEMENT', ready for --map
	From        string `json:"from"`
	To          string `json:"to"`
	Pairs       int    `json:"pairs"`
	ExampleBase string `json:"example_base"`
	ExampleVLA  string `json:"example_vla"`
}

// MaxSuggestions is how many rules Suggest returns at most: more would be
// noise next to the few prefixes a real layout differs by.
const MaxSuggestions = 3

// Bounds on the work Suggest does, whatever a file holds: VLA tensors one base
// tensor looks at and rewrites it proposes, and rewrites scored.
const (
	maxLooked     = 1024
	maxProposals  = 16
	maxCandidates = 64
)

// Suggest looks at the tensors al left unmatched (base-only and VLA-only) and
// proposes up to MaxSuggestions prefix rewrites, best first. A candidate comes
// from a base-only and a VLA-only tensor of equal shape whose names share a
// dotted tail of at least two segments (more than "weight"); the rewrite is
// what stands before the longest such tail on each side. A candidate is kept
// when it pairs at least two tensors (or the only unmatched ones), and is
// ranked by how many it pairs. Each later suggestion must pair tensors the
// earlier ones do not, so three suggestions cover three different modules.
func Suggest(base, vla []Named, al *Alignment) []Suggestion {
	if al == nil || len(al.BaseOnly) == 0 || len(al.VLAOnly) == 0 {
		return []Suggestion{}
	}
	// VLA-only tensors by each dotted tail of at least two segments
	// ("blocks.0.attn.qkv.weight", "0.attn.qkv.weight", …, "qkv.weight").
	byTail := map[string][]int{}
	for _, v := range al.VLAOnly {
		for _, t := range tails(vla[v].Name) {
			byTail[t] = append(byTail[t], v)
		}
	}
	// VLA-only tensors by name and by canonical spelling (see userStage).
	vlaOnly := make(map[string]int, 2*len(al.VLAOnly))
	for _, v := range al.VLAOnly {
		c, _ := canonicalName(vla[v].Name)
		vlaOnly[c] = v
		vlaOnly[vla[v].Name] = v
	}
	type rewrite struct{ from, to string }
	// Each base tensor proposes the rewrites to the VLA tensors of its shape
	// that share the longest tail with it (layer 3 with layer 3, not layer 7):
	// its tails are looked up longest first, so the work is a few map lookups
	// per name, whatever the file holds. Rewrites are then tried in order of
	// how many tensors proposed them.
	proposals := map[rewrite]int{}
	for _, b := range al.BaseOnly {
		name := base[b].Name
		looked := 0
		for _, t := range tails(name) {
			seen := 0
			for _, v := range byTail[t] {
				if looked++; looked > maxLooked {
					break // a forged file's thousand look-alikes of another shape
				}
				if !slices.Equal(base[b].Shape, vla[v].Shape) {
					continue
				}
				from, to := name[:len(name)-len(t)], vla[v].Name[:len(vla[v].Name)-len(t)]
				if from == to {
					continue
				}
				proposals[rewrite{from, to}]++
				if seen++; seen == maxProposals {
					break // a forged file's thousand look-alikes
				}
			}
			if seen > 0 {
				break
			}
		}
	}
	cands := slices.Collect(maps.Keys(proposals))
	slices.SortFunc(cands, func(x, y rewrite) int {
		return cmp.Or(cmp.Compare(proposals[y], proposals[x]), strings.Compare(x.from, y.from), strings.Compare(x.to, y.to))
	})
	if len(cands) > maxCandidates {
		cands = cands[:maxCandidates]
	}
	// Score each candidate on every unmatched base tensor: the pairs it makes.
	type scored struct {
		rewrite
		pairs    []int // base indices it pairs
		vlas     []int
		examples [2]string
	}
	var all []scored
	for _, c := range cands {
		s := scored{rewrite: c}
		for _, b := range al.BaseOnly {
			rest, ok := strings.CutPrefix(base[b].Name, c.from)
			if !ok {
				continue
			}
			v, ok := vlaOnly[c.to+rest]
			if !ok {
				canon, _ := canonicalName(c.to + rest)
				v, ok = vlaOnly[canon]
			}
			if !ok || !slices.Equal(base[b].Shape, vla[v].Shape) {
				continue
			}
			if len(s.pairs) == 0 {
				s.examples = [2]string{base[b].Name, vla[v].Name}
			}
			s.pairs = append(s.pairs, b)
			s.vlas = append(s.vlas, v)
		}
		if len(s.pairs) >= 2 || (len(s.pairs) == 1 && len(al.BaseOnly) == 1) {
			all = append(all, s)
		}
	}
	slices.SortFunc(all, func(x, y scored) int {
		return cmp.Or(cmp.Compare(len(y.pairs), len(x.pairs)),
			cmp.Compare(len(x.from)+len(x.to), len(y.from)+len(y.to)),
			strings.Compare(x.from, y.from), strings.Compare(x.to, y.to))
	})
	out := []Suggestion{}
	usedBase, usedVLA := map[int]bool{}, map[int]bool{}
	for _, s := range all {
		if len(out) == MaxSuggestions {
			break
		}
		fresh := 0
		for i, b := range s.pairs {
			if !usedBase[b] && !usedVLA[s.vlas[i]] {
				fresh++
			}
		}
		if fresh == 0 || fresh*2 < len(s.pairs) {
			continue // mostly what a better rule already pairs
		}
		for i, b := range s.pairs {
			usedBase[b], usedVLA[s.vlas[i]] = true, true
		}
		out = append(out, Suggestion{Rule: PrefixRule(s.from, s.to), From: s.from, To: s.to, Pairs: len(s.pairs),
			ExampleBase: s.examples[0], ExampleVLA: s.examples[1]})
	}
	return out
}

// PrefixRule writes the --map rule that replaces the leading from by to.
func PrefixRule(from, to string) string {
	return "^" + regexp.QuoteMeta(from) + "=>" + strings.ReplaceAll(to, "$", "$$")
}

// tails are the dotted tails of name of at least two segments, longest
// first, the whole name included: "a.b.c" → "a.b.c", "b.c". (A rewrite may
// add or strip a whole prefix.)
func tails(name string) []string {
	var out []string
	if strings.Contains(name, ".") {
		out = append(out, name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' && strings.Contains(name[i+1:], ".") {
			out = append(out, name[i+1:])
		}
	}
	return out
}
