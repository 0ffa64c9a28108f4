package arch

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Named is one tensor as the aligner sees it: a name and a shape.
type Named struct {
	Name  string
	Shape []int64
}

// Pair is an aligned base/VLA tensor pair, by index into Align's inputs. Overlap
// marks shapes that differ in dim 0 only (a resized vocabulary): the pair is
// compared on the rows both have.
type Pair struct {
	Base, VLA int
	Rule      string // RuleExact, RuleUser, RulePrismatic, RuleTimm, RuleLeRobot, RulePaliGemma, RuleHF, RuleSuffix
	Overlap   bool
}

// Mismatch is a pair aligned by name whose shapes differ beyond dim 0: it is
// listed, never compared.
type Mismatch struct {
	Base, VLA int
	Rule      string
	Reason    string
}

// Sides named in Ambiguity.Side.
const (
	SideBase = "base"
	SideVLA  = "vla"
)

// Ambiguity is a tensor (Name, on Side) that fits several tensors of the other
// side (Candidates). Ambiguous tensors are never guessed at: they stay in BaseOnly
// or VLAOnly and are listed here as well.
type Ambiguity struct {
	Name       string
	Side       string
	Candidates []string
}

// Alignment is the result of Align. Every input tensor of either side is in exactly
// one of Pairs, Mismatched, BaseOnly (base side) or VLAOnly (VLA side). Lists are
// sorted by VLA name (pairs, mismatches, VLA-only) or base name (base-only), and
// Ambiguous by name then side, so output does not depend on input order.
type Alignment struct {
	Pairs      []Pair
	Mismatched []Mismatch
	BaseOnly   []int
	VLAOnly    []int
	Ambiguous  []Ambiguity
}

// Align pairs base and VLA tensors. Stages, each seeing only what earlier stages
// left open:
//  1. user rules, applied to base names; for each base name the first rule whose
//     result is a VLA name wins;
//  2. exact names;
//  3. built-in family rules (Prismatic → OpenVLA, timm LayerScale, PaliGemma hub
//     and transformers ≥ 4.52 names → openpi, LeRobot's "model.", transformers'
//     composite naming): both sides are brought to one canonical spelling and
//     compared; the pair's Rule is the most specific rewrite either name took;
//  4. dotted suffixes checked by shape: a base and a VLA tensor whose names (as
//     given or canonical) are dotted suffixes of one another (the shorter more
//     than a bare "weight" or "bias") and the same shape — or, when no candidate
//     has the same shape, a matrix differing in dim 0 only (an Overlap pair: a
//     plain HF Llama base's 32000-row embed_tokens against OpenVLA's 32064). A
//     pair is made only when each is the other's single candidate;
//  5. tied embeddings: a still-open embed_tokens matrix of one side and lm_head
//     matrix of the other, when neither side stores the other name (the matrix
//     is tied and saved once) and their shapes pair, as in stage 4.
//
// In stages 1–3 a key shared by several tensors of one side, and in stage 4 a
// tensor with several candidates, is reported in Ambiguous and withheld from all
// later stages.
func Align(base, vla []Named, user []MapRule) *Alignment {
	a := newAligner(base, vla)
	a.userStage(user)
	a.matchByKey(
		func(i int) (string, bool) { return a.base[i].Name, true },
		func(i int) (string, bool) { return a.vla[i].Name, true },
		func(int, int) string { return RuleExact })
	a.matchByKey(
		func(i int) (string, bool) { return a.baseCanon[i], true },
		func(i int) (string, bool) { return a.vlaCanon[i], true },
		func(b, v int) string { return ruleName(a.baseTag[b] | a.vlaTag[v]) })
	a.suffixStage()
	a.tiedStage()
	return a.result()
}

// tiedStage pairs a tied embedding saved under different names on the two
// sides (see RuleTied). The authors load both models whole, where the tied
// lm_head and embed_tokens are one matrix, so comparing one side's
// embed_tokens with the other's lm_head is what their ΔW of either amounts to.
func (a *aligner) tiedStage() {
	role := func(canon string) string {
		switch {
		case canon == "lm_head.weight" || strings.HasSuffix(canon, ".lm_head.weight"):
			return "head"
		case canon == "embed_tokens.weight" || strings.HasSuffix(canon, ".embed_tokens.weight"):
			return "embed"
		}
		return ""
	}
	// all lists every matrix of a role on a side, open or not: a side that
	// stores both names has no tied matrix to pair across.
	type found struct{ all, open []int }
	collect := func(canon []string, open []bool, named []Named) map[string]*found {
		out := map[string]*found{"head": {}, "embed": {}}
		for i, c := range canon {
			r := role(c)
			if r == "" || len(named[i].Shape) != 2 {
				continue
			}
			out[r].all = append(out[r].all, i)
			if open[i] {
				out[r].open = append(out[r].open, i)
			}
		}
		return out
	}
	bs, vs := collect(a.baseCanon, a.baseOpen, a.base), collect(a.vlaCanon, a.vlaOpen, a.vla)
	for _, dir := range [][2]string{{"embed", "head"}, {"head", "embed"}} {
		b := bs[dir[0]]
		if len(b.open) != 1 || len(bs[dir[1]].all) != 0 || len(vs[dir[0]].all) != 0 {
			continue
		}
		// Among the other side's open candidates only one may pair by shape:
		// π0.5 also has its action expert's own, narrower lm_head.
		bi, cands := b.open[0], []int(nil)
		for _, vi := range vs[dir[1]].open {
			if rel := shapeRelation(a.base[bi].Shape, a.vla[vi].Shape); rel == shapesEqual || rel == shapesOverlap {
				cands = append(cands, vi)
			}
		}
		if len(cands) == 1 {
			a.link(bi, cands[0], RuleTied)
		}
	}
}

type aligner struct {
	base, vla           []Named
	baseCanon, vlaCanon []string
	baseTag, vlaTag     []familyTag
	// baseOpen/vlaOpen: still available to later stages (not aligned, not withheld).
	baseOpen, vlaOpen []bool
	// baseAligned/vlaAligned: in Pairs or Mismatched.
	baseAligned, vlaAligned []bool
	out                     Alignment
}

func newAligner(base, vla []Named) *aligner {
	a := &aligner{
		base: base, vla: vla,
		baseCanon: make([]string, len(base)), vlaCanon: make([]string, len(vla)),
		baseTag: make([]familyTag, len(base)), vlaTag: make([]familyTag, len(vla)),
		baseOpen: make([]bool, len(base)), vlaOpen: make([]bool, len(vla)),
		baseAligned: make([]bool, len(base)), vlaAligned: make([]bool, len(vla)),
	}
	for i, t := range base {
		a.baseCanon[i], a.baseTag[i] = canonicalName(t.Name)
		a.baseOpen[i] = true
	}
	for i, t := range vla {
		a.vlaCanon[i], a.vlaTag[i] = canonicalName(t.Name)
		a.vlaOpen[i] = true
	}
	return a
}

// link records b ↔ v as a pair (same shape, or differing in dim 0 only) or as a
// mismatch.
func (a *aligner) link(b, v int, rule string) {
	a.baseOpen[b], a.vlaOpen[v] = false, false
	a.baseAligned[b], a.vlaAligned[v] = true, true
	bs, vs := a.base[b].Shape, a.vla[v].Shape
	switch shapeRelation(bs, vs) {
	case shapesEqual:
		a.out.Pairs = append(a.out.Pairs, Pair{Base: b, VLA: v, Rule: rule})
	case shapesOverlap:
		a.out.Pairs = append(a.out.Pairs, Pair{Base: b, VLA: v, Rule: rule, Overlap: true})
	default:
		a.out.Mismatched = append(a.out.Mismatched, Mismatch{Base: b, VLA: v, Rule: rule, Reason: mismatchReason(bs, vs)})
	}
}

// withhold reports an ambiguity and keeps every tensor involved out of later stages.
func (a *aligner) withhold(bases, vlas []int) {
	baseNames := a.names(a.base, bases)
	vlaNames := a.names(a.vla, vlas)
	if len(vlas) > 1 {
		for _, b := range bases {
			a.out.Ambiguous = append(a.out.Ambiguous, Ambiguity{Name: a.base[b].Name, Side: SideBase, Candidates: vlaNames})
		}
	}
	if len(bases) > 1 {
		for _, v := range vlas {
			a.out.Ambiguous = append(a.out.Ambiguous, Ambiguity{Name: a.vla[v].Name, Side: SideVLA, Candidates: baseNames})
		}
	}
	for _, b := range bases {
		a.baseOpen[b] = false
	}
	for _, v := range vlas {
		a.vlaOpen[v] = false
	}
}

func (a *aligner) names(side []Named, idx []int) []string {
	out := make([]string, len(idx))
	for i, k := range idx {
		out[i] = side[k].Name
	}
	slices.Sort(out)
	return out
}

// matchByKey pairs open tensors whose keys are equal; a key held by more than one
// tensor on either side (while the other side has it too) is an ambiguity.
func (a *aligner) matchByKey(baseKey, vlaKey func(int) (string, bool), rule func(b, v int) string) {
	bases := map[string][]int{}
	for i := range a.base {
		if !a.baseOpen[i] {
			continue
		}
		if k, ok := baseKey(i); ok {
			bases[k] = append(bases[k], i)
		}
	}
	vlas := map[string][]int{}
	for i := range a.vla {
		if !a.vlaOpen[i] {
			continue
		}
		if k, ok := vlaKey(i); ok {
			vlas[k] = append(vlas[k], i)
		}
	}
	keys := make([]string, 0, len(bases))
	for k := range bases {
		if _, ok := vlas[k]; ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		bs, vs := bases[k], vlas[k]
		if len(bs) == 1 && len(vs) == 1 {
			a.link(bs[0], vs[0], rule(bs[0], vs[0]))
			continue
		}
		a.withhold(bs, vs)
	}
}

// userStage applies the user's rules: a base name's key is the result of the
// first rule that turns it into an open VLA name.
func (a *aligner) userStage(rules []MapRule) {
	if len(rules) == 0 {
		return
	}
	vlaNames := make(map[string]bool, len(a.vla))
	for _, t := range a.vla {
		vlaNames[t.Name] = true
	}
	// A rewritten name may still need a built-in rename (a prefix rule on a
	// timm encoder leaves LayerScale's gamma): it also finds the VLA tensor
	// whose canonical spelling is its own, when only one has it.
	byCanon := map[string]string{}
	for i, t := range a.vla {
		if _, dup := byCanon[a.vlaCanon[i]]; dup {
			byCanon[a.vlaCanon[i]] = ""
			continue
		}
		byCanon[a.vlaCanon[i]] = t.Name
	}
	targets := make([]string, len(a.base))
	hasTarget := make([]bool, len(a.base))
	for i, t := range a.base {
		for _, r := range rules {
			to, ok := r.apply(t.Name)
			if !ok {
				continue
			}
			if !vlaNames[to] {
				c, _ := canonicalName(to)
				to = byCanon[c]
			}
			if to != "" {
				targets[i], hasTarget[i] = to, true
				break
			}
		}
	}
	a.matchByKey(
		func(i int) (string, bool) { return targets[i], hasTarget[i] },
		func(i int) (string, bool) { return a.vla[i].Name, true },
		func(int, int) string { return RuleUser })
}

// suffixEdge is a suffix candidate pair; sameShape tells it apart from one that
// differs in dim 0 only.
type suffixEdge struct {
	b, v      int
	sameShape bool
}

func (a *aligner) suffixStage() {
	// Bucket open VLA tensors under both spellings (see bucketKeys).
	buckets := map[string][]int{}
	for v := range a.vla {
		if !a.vlaOpen[v] {
			continue
		}
		keys := append(bucketKeys(a.vla[v].Name), bucketKeys(a.vlaCanon[v])...)
		slices.Sort(keys)
		for _, key := range slices.Compact(keys) {
			buckets[key] = append(buckets[key], v)
		}
	}
	var edges []suffixEdge
	for b := range a.base {
		if !a.baseOpen[b] {
			continue
		}
		seen := map[int]bool{}
		for _, key := range append(lookupKeys(a.base[b].Name), lookupKeys(a.baseCanon[b])...) {
			for _, v := range buckets[key] {
				if seen[v] || !a.suffixRelated(b, v) {
					continue
				}
				seen[v] = true
				switch shapeRelation(a.base[b].Shape, a.vla[v].Shape) {
				case shapesEqual:
					edges = append(edges, suffixEdge{b, v, true})
				case shapesOverlap:
					// Only matrices (a resized vocabulary): a vector differing in
					// length is far more likely another module's norm or bias.
					if len(a.base[b].Shape) >= 2 {
						edges = append(edges, suffixEdge{b, v, false})
					}
				}
			}
		}
	}
	baseCands := preferSameShape(edges, func(e suffixEdge) int { return e.b }, func(e suffixEdge) int { return e.v })
	vlaCands := preferSameShape(edges, func(e suffixEdge) int { return e.v }, func(e suffixEdge) int { return e.b })

	for _, b := range slices.Sorted(maps.Keys(baseCands)) {
		vs := baseCands[b]
		if len(vs) == 1 && len(vlaCands[vs[0]]) == 1 && vlaCands[vs[0]][0] == b {
			a.link(b, vs[0], RuleSuffix)
		}
	}
	// What is left with several candidates is ambiguous; it is reported from
	// whichever side has the choice.
	for _, b := range slices.Sorted(maps.Keys(baseCands)) {
		if vs := baseCands[b]; len(vs) > 1 {
			a.out.Ambiguous = append(a.out.Ambiguous, Ambiguity{Name: a.base[b].Name, Side: SideBase, Candidates: a.names(a.vla, vs)})
		}
	}
	for _, v := range slices.Sorted(maps.Keys(vlaCands)) {
		if bs := vlaCands[v]; len(bs) > 1 {
			a.out.Ambiguous = append(a.out.Ambiguous, Ambiguity{Name: a.vla[v].Name, Side: SideVLA, Candidates: a.names(a.base, bs)})
		}
	}
}

// suffixRelated: one name is a dotted suffix of the other, as given or canonical,
// and the shorter is more than a bare "weight" or "bias".
func (a *aligner) suffixRelated(b, v int) bool {
	related := func(x, y string) bool {
		if len(x) > len(y) {
			x, y = y, x
		}
		return !genericParams[x] && isDottedSuffix(x, y)
	}
	return related(a.base[b].Name, a.vla[v].Name) || related(a.baseCanon[b], a.vlaCanon[v])
}

// preferSameShape groups edges by one end and keeps, per group, the same-shape
// candidates when there are any, else the dim-0-overlap ones.
func preferSameShape(edges []suffixEdge, from, to func(suffixEdge) int) map[int][]int {
	same, overlap := map[int][]int{}, map[int][]int{}
	for _, e := range edges {
		if e.sameShape {
			same[from(e)] = append(same[from(e)], to(e))
		} else {
			overlap[from(e)] = append(overlap[from(e)], to(e))
		}
	}
	for k, vs := range overlap {
		if _, ok := same[k]; !ok {
			same[k] = vs
		}
	}
	return same
}

func (a *aligner) result() *Alignment {
	out := a.out
	for i := range a.base {
		if !a.baseAligned[i] {
			out.BaseOnly = append(out.BaseOnly, i)
		}
	}
	for i := range a.vla {
		if !a.vlaAligned[i] {
			out.VLAOnly = append(out.VLAOnly, i)
		}
	}
	byName := func(side []Named) func(x, y int) int {
		return func(x, y int) int {
			return cmp.Or(strings.Compare(side[x].Name, side[y].Name), cmp.Compare(x, y))
		}
	}
	byPair := func(b1, v1, b2, v2 int) int {
		return cmp.Or(byName(a.vla)(v1, v2), byName(a.base)(b1, b2))
	}
	slices.SortFunc(out.Pairs, func(x, y Pair) int { return byPair(x.Base, x.VLA, y.Base, y.VLA) })
	slices.SortFunc(out.Mismatched, func(x, y Mismatch) int { return byPair(x.Base, x.VLA, y.Base, y.VLA) })
	slices.SortFunc(out.BaseOnly, byName(a.base))
	slices.SortFunc(out.VLAOnly, byName(a.vla))
	slices.SortStableFunc(out.Ambiguous, func(x, y Ambiguity) int {
		return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.Side, y.Side))
	})
	return &out
}

type shapeRel int

const (
	shapesEqual   shapeRel = iota
	shapesOverlap          // same rank ≥ 1, differ in dim 0 only
	shapesDiffer
)

func shapeRelation(a, b []int64) shapeRel {
	if len(a) != len(b) {
		return shapesDiffer
	}
	if len(a) == 0 {
		return shapesEqual
	}
	if !slices.Equal(a[1:], b[1:]) {
		return shapesDiffer
	}
	if a[0] != b[0] {
		return shapesOverlap
	}
	return shapesEqual
}

func mismatchReason(base, vla []int64) string {
	if len(base) != len(vla) {
		return fmt.Sprintf("rank differs: base %s (rank %d) vs VLA %s (rank %d)", FormatShape(base), len(base), FormatShape(vla), len(vla))
	}
	return fmt.Sprintf("shape differs beyond dim 0: base %s vs VLA %s", FormatShape(base), FormatShape(vla))
}

// FormatShape writes a shape as "[1032,128]".
func FormatShape(s []int64) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, d := range s {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatInt(d, 10))
	}
	sb.WriteByte(']')
	return sb.String()
}
