package arch

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// prismaticCases turns the OpenVLA pair's base side into the names Prismatic's
// training code writes: the whole VLM's state dict (flat) or a training
// checkpoint {"model": {"vision_backbone": ..., "projector": ..., "llm_backbone":
// ...}} flattened to dotted names (nested), with DINOv2 LayerScale as gamma.
func prismaticCases(nested bool, projector string) []openvlaCase {
	cs := openvlaCasesN(3, 24, 27)
	outer := ""
	if nested {
		outer = "model."
	}
	for i, c := range cs {
		name := c.base
		for _, p := range []string{"model.llm_backbone.", "model.projector."} {
			name = strings.TrimPrefix(name, p)
		}
		switch {
		case strings.HasPrefix(c.base, "model.llm_backbone."):
			name = outer + "llm_backbone." + name
		case strings.HasPrefix(c.base, "model.projector."):
			// name is now "projector.N.weight": Sequential index under the module.
			name = outer + projector + strings.TrimPrefix(name, "projector.")
		case strings.HasPrefix(c.base, "vision_backbone.featurizer."):
			name = outer + "vision_backbone.dino_featurizer." + strings.TrimPrefix(name, "vision_backbone.featurizer.")
		case strings.HasPrefix(c.base, "vision_backbone.fused_featurizer."):
			name = outer + "vision_backbone.siglip_featurizer." + strings.TrimPrefix(name, "vision_backbone.fused_featurizer.")
		default:
			panic("unplaced case " + c.base)
		}
		cs[i].base = name
		cs[i].rule = RulePrismatic
	}
	return cs
}

// Prismatic's own names against OpenVLA's HF names, with OpenVLA-7B's real
// shapes and block counts: every tensor aligns, by the Prismatic rule, for
// both checkpoint forms and both projector spellings.
func TestAlignPrismaticTrainingNames(t *testing.T) {
	for _, nested := range []bool{false, true} {
		for _, proj := range []string{"projector.projector.", "projector."} {
			t.Run(fmt.Sprintf("nested=%v/%s", nested, proj), func(t *testing.T) {
				cs := prismaticCases(nested, proj)
				base, vla := splitCases(cs)
				al := Align(base, vla, nil)
				checkAlignment(t, base, vla, al)
				if n := len(al.BaseOnly) + len(al.VLAOnly) + len(al.Mismatched) + len(al.Ambiguous); n != 0 {
					t.Fatalf("%d of %d tensors unaligned: base %q, VLA %q", n, len(cs),
						namesOf(base, al.BaseOnly)[:min(5, len(al.BaseOnly))], namesOf(vla, al.VLAOnly)[:min(5, len(al.VLAOnly))])
				}
				got := pairsByVLA(base, vla, al)
				for _, c := range cs {
					want := c.base + " (prismatic"
					if !slices.Equal(c.baseShape, c.vlaShape) {
						want += ", overlap"
					}
					if want += ")"; got[c.vla] != want {
						t.Errorf("%s: got %q, want %q", c.vla, got[c.vla], want)
					}
				}
				if g := got["vision_backbone.featurizer.blocks.23.ls2.scale_factor"]; !strings.HasSuffix(strings.Fields(g)[0], ".blocks.23.ls2.gamma") {
					t.Errorf("DINOv2 LayerScale paired with %q, want its gamma", g)
				}
			})
		}
	}
}

// A single-backbone Prismatic (DINOv2 only) already says featurizer; nested
// under "model." it still aligns.
func TestAlignPrismaticSingleBackbone(t *testing.T) {
	vla := []Named{
		{"vision_backbone.featurizer.blocks.0.attn.qkv.weight", []int64{3072, 1024}},
		{"vision_backbone.featurizer.blocks.0.ls1.scale_factor", []int64{1024}},
		{"projector.fc1.weight", []int64{4096, 1024}},
	}
	base := []Named{
		{"model.vision_backbone.featurizer.blocks.0.attn.qkv.weight", []int64{3072, 1024}},
		{"model.vision_backbone.featurizer.blocks.0.ls1.gamma", []int64{1024}},
		{"model.projector.projector.0.weight", []int64{4096, 1024}},
	}
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	got := pairsByVLA(base, vla, al)
	for i, v := range vla {
		if want := base[i].Name + " (prismatic)"; got[v.Name] != want {
			t.Errorf("%s: got %q, want %q", v.Name, got[v.Name], want)
		}
	}
}

// Encoders loaded under prefixes no rule knows: the suggestions are the two
// prefix rewrites, best first, and applying them aligns everything.
func TestSuggestPrefixRewrites(t *testing.T) {
	cs := openvlaCasesN(2, 4, 3)
	for i, c := range cs {
		if rest, ok := strings.CutPrefix(c.base, "vision_backbone.featurizer."); ok {
			cs[i].base = "dinov2.trunk." + rest
		}
		if rest, ok := strings.CutPrefix(c.base, "vision_backbone.fused_featurizer."); ok {
			cs[i].base = "siglip$." + rest // a "$" must survive the replacement syntax
		}
	}
	base, vla := splitCases(cs)
	al := Align(base, vla, nil)
	if len(al.BaseOnly) == 0 {
		t.Fatal("expected unaligned encoders")
	}
	got := Suggest(base, vla, al)
	want := []struct {
		rule  string
		pairs int
	}{
		{`^siglip\$\.=>vision_backbone.fused_featurizer.`, 5 + 7*3 + 2},
		{`^dinov2\.trunk\.=>vision_backbone.featurizer.`, 5 + 9*4 + 2},
	}
	slices.SortFunc(want, func(a, b struct {
		rule  string
		pairs int
	}) int {
		return b.pairs - a.pairs
	})
	if len(got) != len(want) {
		t.Fatalf("got %d suggestions %+v, want %d", len(got), got, len(want))
	}
	var rules []MapRule
	for i, w := range want {
		if got[i].Rule != w.rule || got[i].Pairs != w.pairs {
			t.Errorf("suggestion %d: %q pairing %d, want %q pairing %d", i, got[i].Rule, got[i].Pairs, w.rule, w.pairs)
		}
		r, err := ParseMapRule(got[i].Rule)
		if err != nil {
			t.Fatalf("suggestion %q does not parse: %v", got[i].Rule, err)
		}
		rules = append(rules, r)
	}
	al = Align(base, vla, rules)
	checkAlignment(t, base, vla, al)
	if len(al.BaseOnly)+len(al.VLAOnly) != 0 {
		t.Errorf("with the suggestions applied, still unaligned: base %q, VLA %q", namesOf(base, al.BaseOnly), namesOf(vla, al.VLAOnly))
	}
}

// Nothing to suggest when names share no tail with an equal shape, and never
// more than MaxSuggestions.
func TestSuggestLimits(t *testing.T) {
	base := []Named{{"a.x.weight", []int64{4, 4}}, {"a.y.weight", []int64{4, 4}}}
	vla := []Named{{"b.x.weight", []int64{4, 5}}, {"b.z.weight", []int64{4, 4}}}
	if got := Suggest(base, vla, Align(base, vla, nil)); len(got) != 0 {
		t.Errorf("unequal shapes or tails: got %+v", got)
	}
	base, vla = nil, nil
	for m := range 5 {
		for l := range 3 {
			base = append(base, Named{fmt.Sprintf("old%d.layers.%d.w.weight", m, l), []int64{int64(m + 2), 3}})
			vla = append(vla, Named{fmt.Sprintf("new%d.layers.%d.w.weight", m, l), []int64{int64(m + 2), 3}})
		}
	}
	got := Suggest(base, vla, Align(base, vla, nil))
	if len(got) != MaxSuggestions {
		t.Fatalf("got %d suggestions, want %d: %+v", len(got), MaxSuggestions, got)
	}
	for _, s := range got {
		if s.Pairs != 3 || !strings.HasPrefix(s.ExampleBase, strings.TrimSuffix(s.From, ".")) {
			t.Errorf("suggestion %+v: want 3 pairs and an example under its prefix", s)
		}
	}
}

// Guesses are told apart from geometry a config, a recognised model or the
// user gave: the π0.5 fixture's 48-wide SigLIP (no config) is a guess until
// its heads are set; OpenVLA's recognised shapes never are.
func TestGeometriesGuessed(t *testing.T) {
	_, pi05VLA := loadPi05(t)
	_, guessed, _ := GeometriesGuessed(nil, pi05VLA, nil)
	if !slices.Equal(guessed, []string{CompSigLIP}) {
		t.Errorf("π0.5 fixture: guessed %v, want [%s]", guessed, CompSigLIP)
	}
	geo, guessed, warns := GeometriesGuessed(nil, pi05VLA, map[string]Geometry{CompSigLIP: {Heads: 4}})
	if len(guessed) != 0 || geo[CompSigLIP] != (Geometry{Heads: 4, KVHeads: 4, HeadDim: 12}) {
		t.Errorf("with SigLIP's heads set: guessed %v, geometry %v (warnings %v)", guessed, geo[CompSigLIP], warns)
	}
	_, openvla := splitCases(openvlaCases())
	if _, guessed, _ := GeometriesGuessed(nil, openvla, nil); len(guessed) != 0 {
		t.Errorf("OpenVLA: guessed %v", guessed)
	}
}

// Many look-alike names (as a forged file could hold) cost a bounded amount of
// work, and the right rewrite still comes first.
func TestSuggestManyLookAlikes(t *testing.T) {
	var base, vla []Named
	for i := range 20000 {
		base = append(base, Named{fmt.Sprintf("old.layers.%d.w.weight", i), []int64{4, 4}})
		vla = append(vla, Named{fmt.Sprintf("new.layers.%d.w.weight", i), []int64{4, 4}})
	}
	al := &Alignment{}
	for i := range base {
		al.BaseOnly = append(al.BaseOnly, i)
		al.VLAOnly = append(al.VLAOnly, i)
	}
	start := time.Now()
	got := Suggest(base, vla, al)
	if len(got) == 0 || got[0].Rule != `^old\.=>new.` || got[0].Pairs != len(base) {
		t.Fatalf("suggestions %+v", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Suggest took %v on %d names", d, len(base))
	}
}
