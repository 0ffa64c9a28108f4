package arch

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// parseSpec reads a fuzz side: one tensor per line, "NAME DIM,DIM,...". Lines
// without a space are names of scalars. At most 64 tensors, so that runs stay fast.
func parseSpec(spec string) []Named {
	var out []Named
	for line := range strings.SplitSeq(spec, "\n") {
		if len(out) == 64 {
			break
		}
		name, dims, _ := strings.Cut(line, " ")
		var shape []int64
		for d := range strings.SplitSeq(dims, ",") {
			if n, err := strconv.ParseInt(d, 10, 64); err == nil {
				shape = append(shape, n)
			}
		}
		out = append(out, Named{Name: name, Shape: shape})
	}
	return out
}

func formatSpec(ts []Named) string {
	lines := make([]string, len(ts))
	for i, t := range ts {
		lines[i] = t.Name + " " + strings.Trim(FormatShape(t.Shape), "[]")
	}
	return strings.Join(lines, "\n")
}

// describe turns an alignment into index-free text, so that alignments of the
// same tensors given in different orders can be compared.
func describe(base, vla []Named, al *Alignment) string {
	var lines []string
	key := func(t Named) string { return t.Name + FormatShape(t.Shape) }
	for _, p := range al.Pairs {
		lines = append(lines, fmt.Sprintf("pair %s %s %s %v", key(base[p.Base]), key(vla[p.VLA]), p.Rule, p.Overlap))
	}
	for _, m := range al.Mismatched {
		lines = append(lines, fmt.Sprintf("mismatch %s %s %s", key(base[m.Base]), key(vla[m.VLA]), m.Rule))
	}
	for _, b := range al.BaseOnly {
		lines = append(lines, "base-only "+key(base[b]))
	}
	for _, v := range al.VLAOnly {
		lines = append(lines, "vla-only "+key(vla[v]))
	}
	for _, a := range al.Ambiguous {
		lines = append(lines, fmt.Sprintf("ambiguous %s %s %q", a.Side, a.Name, a.Candidates))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func FuzzAlign(f *testing.F) {
	base, vla := loadPi05(f)
	f.Add(formatSpec(base), formatSpec(vla), "")
	f.Add(formatSpec(base[:20]), formatSpec(rename(vla, func(n string) string { return "model." + n })), `^vision_tower\.(.*)=>x.$1`)
	ob, ov := splitCases(openvlaCases())
	f.Add(formatSpec(ob), formatSpec(ov), `^model\.llm_backbone\.llm\.(.*)$=>language_model.$1`)
	f.Add("blocks.0.attn.qkv.weight 96,32\na.norm.weight 8\nb.norm.weight 8\nweight 8\nx 1\nx 2",
		"vision_backbone.featurizer.blocks.0.attn.qkv.weight 96,32\nvision_backbone.fused_featurizer.blocks.0.attn.qkv.weight 96,32\nnorm.weight 8\nx 1",
		`^(.)=>$1`)
	f.Add("a.b 3,4\na.b 3,4\n.b 1\nc. 2", "a.b 5,4\nb 1\n. 2\n", "x")

	f.Fuzz(func(t *testing.T, baseSpec, vlaSpec, rule string) {
		base, vla := parseSpec(baseSpec), parseSpec(vlaSpec)
		var rules []MapRule
		if r, err := ParseMapRule(rule); err == nil {
			rules = append(rules, r)
		}
		al := Align(base, vla, rules)
		checkAlignment(t, base, vla, al)
		if again := Align(base, vla, rules); describe(base, vla, again) != describe(base, vla, al) {
			t.Fatalf("Align is not deterministic")
		}
		rb, rv := slices.Clone(base), slices.Clone(vla)
		slices.Reverse(rb)
		slices.Reverse(rv)
		if got, want := describe(rb, rv, Align(rb, rv, rules)), describe(base, vla, al); got != want {
			t.Fatalf("result depends on input order:\nreversed:\n%s\noriginal:\n%s", got, want)
		}
	})
}
