package analysis

import (
	"fmt"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// Preview is how two sides align, from their headers alone: what an analysis
// of them would compare and what it would list apart, in the same types and
// words as its Result, so the user can fix prefixes and rules before spending
// minutes on the analysis.
type Preview struct {
	BaseTensors int            `json:"base_tensors"`
	VLATensors  int            `json:"vla_tensors"`
	Aligned     int            `json:"aligned"`
	BaseOnly    []string       `json:"base_only"`
	VLAOnly     []string       `json:"vla_only"`
	Mismatched  []Mismatch     `json:"mismatched"`
	Ambiguous   []Ambiguity    `json:"ambiguous"`
	PairsByRule map[string]int `json:"pairs_by_rule"`
}

// PreviewAlignment aligns two opened sides as Analyze would (the same rules,
// maps 'REGEX=>REPLACEMENT' first), reading no tensor data.
func PreviewAlignment(base, vla *checkpoint.Side, maps []string) (*Preview, error) {
	rules, err := parseMaps(maps)
	if err != nil {
		return nil, err
	}
	bn, vn := base.Named(), vla.Named()
	al := arch.Align(bn, vn, rules)
	p := &Preview{BaseTensors: len(bn), VLATensors: len(vn), Aligned: len(al.Pairs), PairsByRule: map[string]int{}}
	p.BaseOnly, p.VLAOnly, p.Mismatched, p.Ambiguous = listedApart(bn, vn, al)
	for _, pr := range al.Pairs {
		p.PairsByRule[pr.Rule]++
		if pr.Overlap {
			b, v := bn[pr.Base], vn[pr.VLA]
			p.Mismatched = append(p.Mismatched, overlapMismatch(b, v, overlapRows(b.Shape, v.Shape)))
		}
	}
	return p, nil
}

// parseMaps parses user alignment rules, naming the one at fault.
func parseMaps(maps []string) ([]arch.MapRule, error) {
	rules := make([]arch.MapRule, 0, len(maps))
	for _, m := range maps {
		r, err := arch.ParseMapRule(m)
		if err != nil {
			return nil, fmt.Errorf("--map %q: %w", m, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// listedApart is what an alignment leaves out of the comparison, by name:
// tensors of one side only, pairs whose shapes differ beyond dim 0, and names
// several tensors could match. Lists are never nil (they are JSON arrays).
func listedApart(bn, vn []arch.Named, al *arch.Alignment) (baseOnly, vlaOnly []string, mismatched []Mismatch, ambiguous []Ambiguity) {
	baseOnly, vlaOnly, mismatched, ambiguous = []string{}, []string{}, []Mismatch{}, []Ambiguity{}
	for _, i := range al.BaseOnly {
		baseOnly = append(baseOnly, bn[i].Name)
	}
	for _, i := range al.VLAOnly {
		vlaOnly = append(vlaOnly, vn[i].Name)
	}
	for _, m := range al.Mismatched {
		mismatched = append(mismatched, Mismatch{Base: bn[m.Base].Name, VLA: vn[m.VLA].Name,
			ShapeBase: bn[m.Base].Shape, ShapeVLA: vn[m.VLA].Shape, Reason: m.Reason})
	}
	for _, a := range al.Ambiguous {
		ambiguous = append(ambiguous, Ambiguity{Name: a.Name, Side: a.Side, Candidates: a.Candidates})
	}
	return
}

// overlapMismatch is a pair whose shapes differ in dim 0 only: compared on the
// first rows rows, and listed so that nobody mistakes it for a full comparison.
func overlapMismatch(b, v arch.Named, rows int64) Mismatch {
	return Mismatch{Base: b.Name, VLA: v.Name, ShapeBase: b.Shape, ShapeVLA: v.Shape, Compared: true,
		Reason: fmt.Sprintf("dim 0 differs: compared on the first %d rows", rows)}
}

// overlapRows is the number of rows an analysis compares of a pair whose
// shapes differ in dim 0 only, as newPairJob counts them: the shorter dim 0
// for matrices, one row for scalars and vectors, none when a side is empty.
func overlapRows(b, v []int64) int64 {
	elems := func(s []int64) int64 {
		n := int64(1)
		for _, d := range s {
			n *= d
		}
		return n
	}
	switch {
	case elems(b) == 0 || elems(v) == 0:
		return 0
	case len(b) < 2 || len(v) < 2:
		return 1
	}
	return min(b[0], v[0])
}
