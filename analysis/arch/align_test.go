package arch

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// checkAlignment asserts what every Alignment must hold: each tensor of each side
// in exactly one list, pairs with compatible shapes (Overlap exactly when dim 0
// differs), mismatches with incompatible ones, sorted lists, ambiguous tensors
// left unaligned.
func checkAlignment(t testing.TB, base, vla []Named, al *Alignment) {
	t.Helper()
	baseCount := make([]int, len(base))
	vlaCount := make([]int, len(vla))
	count := func(what string, b, v int) bool {
		if b < -1 || b >= len(base) || v < -1 || v >= len(vla) {
			t.Errorf("%s: index out of range (base %d, vla %d)", what, b, v)
			return false
		}
		if b >= 0 {
			baseCount[b]++
		}
		if v >= 0 {
			vlaCount[v]++
		}
		return true
	}
	for _, p := range al.Pairs {
		if !count("pair", p.Base, p.VLA) {
			continue
		}
		rel := shapeRelation(base[p.Base].Shape, vla[p.VLA].Shape)
		if rel == shapesDiffer || p.Overlap != (rel == shapesOverlap) {
			t.Errorf("pair %q ↔ %q: shapes %v / %v with Overlap=%v", base[p.Base].Name, vla[p.VLA].Name, base[p.Base].Shape, vla[p.VLA].Shape, p.Overlap)
		}
		if p.Rule == "" {
			t.Errorf("pair %q ↔ %q: empty rule", base[p.Base].Name, vla[p.VLA].Name)
		}
	}
	for _, m := range al.Mismatched {
		if !count("mismatch", m.Base, m.VLA) {
			continue
		}
		if shapeRelation(base[m.Base].Shape, vla[m.VLA].Shape) != shapesDiffer || m.Reason == "" {
			t.Errorf("mismatch %q ↔ %q: shapes %v / %v, reason %q", base[m.Base].Name, vla[m.VLA].Name, base[m.Base].Shape, vla[m.VLA].Shape, m.Reason)
		}
	}
	for _, b := range al.BaseOnly {
		count("base-only", b, -1)
	}
	for _, v := range al.VLAOnly {
		count("vla-only", -1, v)
	}
	for i, c := range baseCount {
		if c != 1 {
			t.Errorf("base tensor %d %q is in %d lists, want 1", i, base[i].Name, c)
		}
	}
	for i, c := range vlaCount {
		if c != 1 {
			t.Errorf("VLA tensor %d %q is in %d lists, want 1", i, vla[i].Name, c)
		}
	}
	if t.Failed() {
		return
	}
	vlaName := func(i int) string { return vla[i].Name }
	baseName := func(i int) string { return base[i].Name }
	if !sortedBy(al.Pairs, func(p Pair) string { return vlaName(p.VLA) }) ||
		!sortedBy(al.Mismatched, func(m Mismatch) string { return vlaName(m.VLA) }) ||
		!sortedBy(al.BaseOnly, baseName) || !sortedBy(al.VLAOnly, vlaName) ||
		!sortedBy(al.Ambiguous, func(a Ambiguity) string { return a.Name }) {
		t.Errorf("lists not sorted by name")
	}
	baseOnly := map[string]bool{}
	for _, b := range al.BaseOnly {
		baseOnly[base[b].Name] = true
	}
	vlaOnly := map[string]bool{}
	for _, v := range al.VLAOnly {
		vlaOnly[vla[v].Name] = true
	}
	for _, a := range al.Ambiguous {
		if len(a.Candidates) < 2 || !slices.IsSorted(a.Candidates) {
			t.Errorf("ambiguity %q: candidates %q, want ≥ 2, sorted", a.Name, a.Candidates)
		}
		if (a.Side == SideBase && !baseOnly[a.Name]) || (a.Side == SideVLA && !vlaOnly[a.Name]) || (a.Side != SideBase && a.Side != SideVLA) {
			t.Errorf("ambiguous %s tensor %q is not left unaligned", a.Side, a.Name)
		}
	}
}

func sortedBy[T any](xs []T, key func(T) string) bool {
	return slices.IsSortedFunc(xs, func(a, b T) int { return strings.Compare(key(a), key(b)) })
}

// pairsByVLA maps each paired VLA name to "base name (rule[, overlap])".
func pairsByVLA(base, vla []Named, al *Alignment) map[string]string {
	out := map[string]string{}
	for _, p := range al.Pairs {
		v := base[p.Base].Name + " (" + p.Rule
		if p.Overlap {
			v += ", overlap"
		}
		out[vla[p.VLA].Name] = v + ")"
	}
	return out
}

func namesOf(side []Named, idx []int) []string {
	out := []string{}
	for _, i := range idx {
		out = append(out, side[i].Name)
	}
	return out
}

func TestAlignPi05Fixture(t *testing.T) {
	base, vla := loadPi05(t)
	ref := loadPi05Reference(t)
	if len(ref.Pairs) != 68 {
		t.Fatalf("reference lists %d pairs, the fixture README says 68", len(ref.Pairs))
	}

	// The VLA as openpi writes it, as LeRobot writes it (leading "model."), and
	// the base with transformers ≥ 4.52 names: all must align the same way.
	lerobot := rename(vla, func(n string) string { return "model." + n })
	hfNew := rename(base, hfNewName)
	cases := []struct {
		name      string
		base, vla []Named
		vlaPrefix string
		baseName  func(string) string
		rule      string
	}{
		{"openpi", base, vla, "", func(n string) string { return n }, RulePaliGemma},
		{"lerobot", base, lerobot, "model.", func(n string) string { return n }, RuleLeRobot},
		{"transformers-4.52 base", hfNew, vla, "", hfNewName, RulePaliGemma},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			al := Align(tc.base, tc.vla, nil)
			checkAlignment(t, tc.base, tc.vla, al)
			got := pairsByVLA(tc.base, tc.vla, al)
			if len(al.Pairs) != len(ref.Pairs) {
				t.Errorf("got %d pairs, want %d", len(al.Pairs), len(ref.Pairs))
			}
			for _, p := range ref.Pairs {
				want := tc.baseName(p.Base) + " (" + tc.rule
				if !slices.Equal(p.ShapeBase, p.ShapeVLA) {
					want += ", overlap"
				}
				want += ")"
				if g := got[tc.vlaPrefix+p.VLA]; g != want {
					t.Errorf("VLA %q paired with %q, want %q", p.VLA, g, want)
				}
			}
			wantVLAOnly := make([]string, len(ref.VLAOnly))
			for i, n := range ref.VLAOnly {
				wantVLAOnly[i] = tc.vlaPrefix + n
			}
			if g := namesOf(tc.vla, al.VLAOnly); !slices.Equal(g, wantVLAOnly) {
				t.Errorf("VLA-only:\n got %q\nwant %q", g, wantVLAOnly)
			}
			if len(al.BaseOnly) != 0 || len(ref.BaseOnly) != 0 {
				t.Errorf("base-only %q, reference %q: want none", namesOf(tc.base, al.BaseOnly), ref.BaseOnly)
			}
			if len(al.Mismatched) != 0 || len(al.Ambiguous) != 0 {
				t.Errorf("unexpected mismatches %v / ambiguities %v", al.Mismatched, al.Ambiguous)
			}
		})
	}

	t.Run("embed_tokens overlap", func(t *testing.T) {
		al := Align(base, vla, nil)
		var overlaps []string
		for _, p := range al.Pairs {
			if p.Overlap {
				overlaps = append(overlaps, fmt.Sprintf("%s %v ↔ %v", vla[p.VLA].Name, base[p.Base].Shape, vla[p.VLA].Shape))
			}
		}
		want := []string{"paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight [1032 128] ↔ [1000 128]"}
		if !slices.Equal(overlaps, want) {
			t.Errorf("overlap pairs %q, want %q", overlaps, want)
		}
	})
}

func hfNewName(legacy string) string {
	for _, p := range [][2]string{{"vision_tower.", "model.vision_tower."}, {"multi_modal_projector.", "model.multi_modal_projector."}, {"language_model.model.", "model.language_model."}} {
		if rest, ok := strings.CutPrefix(legacy, p[0]); ok {
			return p[1] + rest
		}
	}
	return legacy
}

func rename(in []Named, f func(string) string) []Named {
	out := make([]Named, len(in))
	for i, t := range in {
		out[i] = Named{Name: f(t.Name), Shape: t.Shape}
	}
	return out
}

// openvlaCase is one tensor of a synthetic Prismatic base / OpenVLA HF pair with
// the real names and full-size shapes (two layers of each family).
type openvlaCase struct {
	base, vla           string
	baseShape, vlaShape []int64
	rule                string
}

func openvlaCases() []openvlaCase { return openvlaCasesN(2, 2, 2) }

// openvlaCasesN builds the pair with the given numbers of Llama layers, DINOv2
// blocks and SigLIP blocks (OpenVLA-7B: 32, 24, 27).
func openvlaCasesN(llmLayers, dinoBlocks, siglipBlocks int) []openvlaCase {
	var cs []openvlaCase
	add := func(base, vla, rule string, baseShape, vlaShape []int64) {
		cs = append(cs, openvlaCase{base, vla, baseShape, vlaShape, rule})
	}
	same := func(base, vla, rule string, shape ...int64) { add(base, vla, rule, shape, shape) }

	// Llama-2 7B under Prismatic's llm_backbone; vocabulary 32000 → 32064.
	add("model.llm_backbone.llm.model.embed_tokens.weight", "language_model.model.embed_tokens.weight", RulePrismatic, []int64{32000, 4096}, []int64{32064, 4096})
	add("model.llm_backbone.llm.lm_head.weight", "language_model.lm_head.weight", RulePrismatic, []int64{32000, 4096}, []int64{32064, 4096})
	same("model.llm_backbone.llm.model.norm.weight", "language_model.model.norm.weight", RulePrismatic, 4096)
	for l := range llmLayers {
		p := fmt.Sprintf("model.llm_backbone.llm.model.layers.%d.", l)
		h := fmt.Sprintf("language_model.model.layers.%d.", l)
		for _, m := range []string{"q_proj", "k_proj", "v_proj", "o_proj"} {
			same(p+"self_attn."+m+".weight", h+"self_attn."+m+".weight", RulePrismatic, 4096, 4096)
		}
		same(p+"mlp.gate_proj.weight", h+"mlp.gate_proj.weight", RulePrismatic, 11008, 4096)
		same(p+"mlp.up_proj.weight", h+"mlp.up_proj.weight", RulePrismatic, 11008, 4096)
		same(p+"mlp.down_proj.weight", h+"mlp.down_proj.weight", RulePrismatic, 4096, 11008)
		same(p+"input_layernorm.weight", h+"input_layernorm.weight", RulePrismatic, 4096)
		same(p+"post_attention_layernorm.weight", h+"post_attention_layernorm.weight", RulePrismatic, 4096)
	}
	// Fused-GELU MLP projector: Sequential indices 0, 2, 4 → fc1, fc2, fc3.
	for i, dims := range [][2]int64{{8704, 2176}, {4096, 8704}, {4096, 4096}} {
		p := fmt.Sprintf("model.projector.projector.%d.", 2*i)
		h := fmt.Sprintf("projector.fc%d.", i+1)
		same(p+"weight", h+"weight", RulePrismatic, dims[0], dims[1])
		same(p+"bias", h+"bias", RulePrismatic, dims[0])
	}
	// The two timm encoders, loaded with the prefixes OpenVLA uses.
	for _, enc := range []struct {
		prefix     string
		width, mlp int64
		layerScale bool
		blocks     int
	}{
		{"vision_backbone.featurizer.", 1024, 4096, true, dinoBlocks},
		{"vision_backbone.fused_featurizer.", 1152, 4304, false, siglipBlocks},
	} {
		w := enc.width
		p := enc.prefix
		same(p+"pos_embed", p+"pos_embed", RuleExact, 1, 256, w)
		same(p+"patch_embed.proj.weight", p+"patch_embed.proj.weight", RuleExact, w, 3, 14, 14)
		same(p+"patch_embed.proj.bias", p+"patch_embed.proj.bias", RuleExact, w)
		same(p+"norm.weight", p+"norm.weight", RuleExact, w)
		same(p+"norm.bias", p+"norm.bias", RuleExact, w)
		if enc.layerScale {
			same(p+"cls_token", p+"cls_token", RuleExact, 1, 1, w)
			same(p+"reg_token", p+"reg_token", RuleExact, 1, 4, w)
		} else {
			same(p+"attn_pool.latent", p+"attn_pool.latent", RuleExact, 1, 1, w)
			same(p+"attn_pool.kv.weight", p+"attn_pool.kv.weight", RuleExact, 2*w, w)
		}
		for l := range enc.blocks {
			b := fmt.Sprintf("%sblocks.%d.", p, l)
			same(b+"norm1.weight", b+"norm1.weight", RuleExact, w)
			same(b+"attn.qkv.weight", b+"attn.qkv.weight", RuleExact, 3*w, w)
			same(b+"attn.qkv.bias", b+"attn.qkv.bias", RuleExact, 3*w)
			same(b+"attn.proj.weight", b+"attn.proj.weight", RuleExact, w, w)
			same(b+"norm2.weight", b+"norm2.weight", RuleExact, w)
			same(b+"mlp.fc1.weight", b+"mlp.fc1.weight", RuleExact, enc.mlp, w)
			same(b+"mlp.fc2.weight", b+"mlp.fc2.weight", RuleExact, w, enc.mlp)
			if enc.layerScale {
				same(b+"ls1.gamma", b+"ls1.scale_factor", RuleTimm, w)
				same(b+"ls2.gamma", b+"ls2.scale_factor", RuleTimm, w)
			}
		}
	}
	return cs
}

func splitCases(cs []openvlaCase) (base, vla []Named) {
	for _, c := range cs {
		base = append(base, Named{c.base, c.baseShape})
		vla = append(vla, Named{c.vla, c.vlaShape})
	}
	return base, vla
}

func TestAlignOpenVLA(t *testing.T) {
	cs := openvlaCases()
	base, vla := splitCases(cs)
	// Reverse one side so that the pairing cannot come from input order.
	slices.Reverse(base)
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	if len(al.BaseOnly)+len(al.VLAOnly)+len(al.Mismatched)+len(al.Ambiguous) != 0 {
		t.Errorf("unaligned: base %q, VLA %q, mismatched %v, ambiguous %v",
			namesOf(base, al.BaseOnly), namesOf(vla, al.VLAOnly), al.Mismatched, al.Ambiguous)
	}
	got := pairsByVLA(base, vla, al)
	for _, c := range cs {
		want := c.base + " (" + c.rule
		if !slices.Equal(c.baseShape, c.vlaShape) {
			want += ", overlap"
		}
		want += ")"
		if got[c.vla] != want {
			t.Errorf("%s: got %q, want %q", c.vla, got[c.vla], want)
		}
	}
	if !strings.Contains(got["language_model.model.embed_tokens.weight"], "overlap") {
		t.Errorf("embed_tokens 32000 vs 32064 must be an overlap pair: %q", got["language_model.model.embed_tokens.weight"])
	}
}

// The timm files loaded without their prefixes: the two encoders' names collide
// (pos_embed, blocks.0.norm1.weight…) but their widths differ, so suffix matching
// by shape still places every tensor, LayerScale renames included.
func TestAlignTimmWithoutPrefixes(t *testing.T) {
	cs := openvlaCases()
	for i, c := range cs {
		for _, p := range []string{"vision_backbone.featurizer.", "vision_backbone.fused_featurizer."} {
			if rest, ok := strings.CutPrefix(c.base, p); ok {
				cs[i].base, cs[i].rule = rest, RuleSuffix
			}
		}
	}
	base, vla := splitCases(cs)
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	got := pairsByVLA(base, vla, al)
	for _, c := range cs {
		want := c.base + " (" + c.rule
		if !slices.Equal(c.baseShape, c.vlaShape) {
			want += ", overlap"
		}
		if want += ")"; got[c.vla] != want {
			t.Errorf("%s: got %q, want %q", c.vla, got[c.vla], want)
		}
	}
	if len(al.BaseOnly)+len(al.VLAOnly) != 0 {
		t.Errorf("unaligned: base %q, VLA %q", namesOf(base, al.BaseOnly), namesOf(vla, al.VLAOnly))
	}
}

// Prismatic's other spellings of the same names (pickle loaded without the outer
// "model" dict, or only the llm_backbone dict).
func TestAlignPrismaticSpellings(t *testing.T) {
	vla := []Named{
		{"language_model.model.layers.0.mlp.up_proj.weight", []int64{6, 4}},
		{"language_model.lm_head.weight", []int64{10, 4}},
		{"projector.fc2.weight", []int64{4, 8}},
		{"projector.fc3.bias", []int64{4}},
	}
	cases := []struct {
		name string
		base []string
	}{
		{"without model.", []string{"llm_backbone.llm.model.layers.0.mlp.up_proj.weight", "llm_backbone.llm.lm_head.weight", "projector.projector.2.weight", "projector.projector.4.bias"}},
		{"bare", []string{"llm.model.layers.0.mlp.up_proj.weight", "llm.lm_head.weight", "projector.2.weight", "projector.4.bias"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var base []Named
			for i, n := range tc.base {
				base = append(base, Named{n, vla[i].Shape})
			}
			al := Align(base, vla, nil)
			checkAlignment(t, base, vla, al)
			got := pairsByVLA(base, vla, al)
			for i, v := range vla {
				if want := tc.base[i] + " (prismatic)"; got[v.Name] != want {
					t.Errorf("%s: got %q, want %q", v.Name, got[v.Name], want)
				}
			}
		})
	}
}

// A plain HF Llama-2 base against OpenVLA: no built-in rule covers it, suffix
// matching by shape does (vocabulary rows differ: overlap).
func TestAlignSuffixHFLlama(t *testing.T) {
	base := []Named{
		{"model.embed_tokens.weight", []int64{32000, 4096}},
		{"model.layers.0.self_attn.q_proj.weight", []int64{4096, 4096}},
		{"model.layers.0.input_layernorm.weight", []int64{4096}},
		{"model.norm.weight", []int64{4096}},
		{"lm_head.weight", []int64{32000, 4096}},
	}
	vla := []Named{
		{"language_model.model.embed_tokens.weight", []int64{32064, 4096}},
		{"language_model.model.layers.0.self_attn.q_proj.weight", []int64{4096, 4096}},
		{"language_model.model.layers.0.input_layernorm.weight", []int64{4096}},
		{"language_model.model.norm.weight", []int64{4096}},
		{"language_model.lm_head.weight", []int64{32064, 4096}},
		{"vision_backbone.featurizer.norm.weight", []int64{4096}},
	}
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	want := map[string]string{
		"language_model.model.embed_tokens.weight":              "model.embed_tokens.weight (suffix, overlap)",
		"language_model.model.layers.0.self_attn.q_proj.weight": "model.layers.0.self_attn.q_proj.weight (suffix)",
		"language_model.model.layers.0.input_layernorm.weight":  "model.layers.0.input_layernorm.weight (suffix)",
		"language_model.model.norm.weight":                      "model.norm.weight (suffix)",
		"language_model.lm_head.weight":                         "lm_head.weight (hf, overlap)",
	}
	got := pairsByVLA(base, vla, al)
	for v, w := range want {
		if got[v] != w {
			t.Errorf("%s: got %q, want %q", v, got[v], w)
		}
	}
	if g := namesOf(vla, al.VLAOnly); !slices.Equal(g, []string{"vision_backbone.featurizer.norm.weight"}) {
		t.Errorf("VLA-only %q", g)
	}
}

func TestAlignSuffixAmbiguity(t *testing.T) {
	// timm files loaded without prefixes: the featurizer and the fused featurizer
	// both fit when their widths agree, so nothing is guessed.
	t.Run("same width", func(t *testing.T) {
		base := []Named{{"blocks.0.attn.qkv.weight", []int64{96, 32}}}
		vla := []Named{
			{"vision_backbone.featurizer.blocks.0.attn.qkv.weight", []int64{96, 32}},
			{"vision_backbone.fused_featurizer.blocks.0.attn.qkv.weight", []int64{96, 32}},
		}
		al := Align(base, vla, nil)
		checkAlignment(t, base, vla, al)
		want := []Ambiguity{{Name: "blocks.0.attn.qkv.weight", Side: SideBase, Candidates: []string{vla[0].Name, vla[1].Name}}}
		if len(al.Pairs) != 0 || len(al.BaseOnly) != 1 || len(al.VLAOnly) != 2 || fmt.Sprint(al.Ambiguous) != fmt.Sprint(want) {
			t.Errorf("got pairs %v, base-only %v, VLA-only %v, ambiguous %v; want only the ambiguity %v", al.Pairs, al.BaseOnly, al.VLAOnly, al.Ambiguous, want)
		}
	})
	t.Run("shape decides", func(t *testing.T) {
		base := []Named{{"blocks.0.attn.qkv.weight", []int64{96, 32}}}
		vla := []Named{
			{"vision_backbone.featurizer.blocks.0.attn.qkv.weight", []int64{96, 32}},
			{"vision_backbone.fused_featurizer.blocks.0.attn.qkv.weight", []int64{108, 36}},
		}
		al := Align(base, vla, nil)
		checkAlignment(t, base, vla, al)
		if got := pairsByVLA(base, vla, al); got[vla[0].Name] != "blocks.0.attn.qkv.weight (suffix)" || len(al.Ambiguous) != 0 {
			t.Errorf("pairs %v, ambiguous %v", got, al.Ambiguous)
		}
	})
	t.Run("two bases one VLA", func(t *testing.T) {
		base := []Named{{"a.norm.weight", []int64{8}}, {"b.norm.weight", []int64{8}}}
		vla := []Named{{"norm.weight", []int64{8}}}
		al := Align(base, vla, nil)
		checkAlignment(t, base, vla, al)
		want := []Ambiguity{{Name: "norm.weight", Side: SideVLA, Candidates: []string{"a.norm.weight", "b.norm.weight"}}}
		if len(al.Pairs) != 0 || fmt.Sprint(al.Ambiguous) != fmt.Sprint(want) {
			t.Errorf("pairs %v, ambiguous %v, want %v", al.Pairs, al.Ambiguous, want)
		}
	})
	t.Run("vectors of another length never pair", func(t *testing.T) {
		base := []Named{{"norm.weight", []int64{1024}}, {"embed_tokens.weight", []int64{32000, 64}}}
		vla := []Named{{"language_model.model.norm.weight", []int64{4096}}, {"language_model.model.embed_tokens.weight", []int64{32064, 64}}}
		al := Align(base, vla, nil)
		checkAlignment(t, base, vla, al)
		want := map[string]string{"language_model.model.embed_tokens.weight": "embed_tokens.weight (suffix, overlap)"}
		if got := pairsByVLA(base, vla, al); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("single segment never matches", func(t *testing.T) {
		base := []Named{{"weight", []int64{8}}}
		vla := []Named{{"x.weight", []int64{8}}}
		al := Align(base, vla, nil)
		checkAlignment(t, base, vla, al)
		if len(al.Pairs) != 0 {
			t.Errorf("a bare \"weight\" was paired: %v", al.Pairs)
		}
	})
}

func TestAlignShapeMismatch(t *testing.T) {
	base := []Named{
		{"w.weight", []int64{10, 20}},
		{"r.weight", []int64{10, 20}},
		{"model.llm_backbone.llm.model.layers.0.mlp.up_proj.weight", []int64{11008, 4096}},
		{"s", nil},
	}
	vla := []Named{
		{"w.weight", []int64{10, 30}},
		{"r.weight", []int64{200}},
		{"language_model.model.layers.0.mlp.up_proj.weight", []int64{11008, 2048}},
		{"s", nil},
	}
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	got := map[string]string{}
	for _, m := range al.Mismatched {
		got[vla[m.VLA].Name] = m.Rule + ": " + m.Reason
	}
	want := map[string]string{
		"w.weight": "exact: shape differs beyond dim 0: base [10,20] vs VLA [10,30]",
		"r.weight": "exact: rank differs: base [10,20] (rank 2) vs VLA [200] (rank 1)",
		"language_model.model.layers.0.mlp.up_proj.weight": "prismatic: shape differs beyond dim 0: base [11008,4096] vs VLA [11008,2048]",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mismatches\n got %v\nwant %v", got, want)
	}
	if len(al.Pairs) != 1 || vla[al.Pairs[0].VLA].Name != "s" || al.Pairs[0].Overlap {
		t.Errorf("scalars must pair exactly: %v", al.Pairs)
	}
}

func mustRules(t *testing.T, specs ...string) []MapRule {
	t.Helper()
	var rules []MapRule
	for _, s := range specs {
		r, err := ParseMapRule(s)
		if err != nil {
			t.Fatalf("ParseMapRule(%q): %v", s, err)
		}
		rules = append(rules, r)
	}
	return rules
}

func TestAlignUserRules(t *testing.T) {
	t.Run("rename", func(t *testing.T) {
		base := []Named{{"enc.layer3.w", []int64{4, 4}}, {"enc.layer4.w", []int64{4, 4}}, {"head", []int64{2}}}
		vla := []Named{{"encoder.layers.3.weight", []int64{4, 4}}, {"encoder.layers.4.weight", []int64{6, 4}}, {"head", []int64{2}}}
		rules := mustRules(t, `^nomatch$=>x`, `^enc\.layer(\d+)\.w$=>encoder.layers.$1.weight`)
		al := Align(base, vla, rules)
		checkAlignment(t, base, vla, al)
		want := map[string]string{
			"encoder.layers.3.weight": "enc.layer3.w (user)",
			"encoder.layers.4.weight": "enc.layer4.w (user, overlap)",
			"head":                    "head (exact)",
		}
		if got := pairsByVLA(base, vla, al); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("before exact names", func(t *testing.T) {
		base := []Named{{"a.weight", []int64{3}}, {"b.weight", []int64{3}}}
		vla := []Named{{"a.weight", []int64{3}}, {"b.weight", []int64{3}}}
		al := Align(base, vla, mustRules(t, `^a\.weight$=>b.weight`))
		checkAlignment(t, base, vla, al)
		want := map[string]string{"b.weight": "a.weight (user)"}
		if got := pairsByVLA(base, vla, al); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if g := namesOf(base, al.BaseOnly); !slices.Equal(g, []string{"b.weight"}) {
			t.Errorf("base-only %q", g)
		}
	})
	t.Run("first rule that yields a VLA name", func(t *testing.T) {
		base := []Named{{"x.w", []int64{3}}}
		vla := []Named{{"y.w", []int64{3}}}
		al := Align(base, vla, mustRules(t, `^x=>missing`, `^x=>y`))
		checkAlignment(t, base, vla, al)
		if got := pairsByVLA(base, vla, al); got["y.w"] != "x.w (user)" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("two bases onto one name", func(t *testing.T) {
		base := []Named{{"p.w", []int64{3}}, {"q.w", []int64{3}}}
		vla := []Named{{"r.w", []int64{3}}}
		al := Align(base, vla, mustRules(t, `^[pq]\.w$=>r.w`))
		checkAlignment(t, base, vla, al)
		want := []Ambiguity{{Name: "r.w", Side: SideVLA, Candidates: []string{"p.w", "q.w"}}}
		if len(al.Pairs) != 0 || fmt.Sprint(al.Ambiguous) != fmt.Sprint(want) {
			t.Errorf("pairs %v, ambiguous %v, want %v", al.Pairs, al.Ambiguous, want)
		}
	})
}

func TestParseMapRule(t *testing.T) {
	cases := []struct {
		in, wantErr string
	}{
		{`^llm\.(.*)$=>language_model.$1`, ""},
		{`^prefix\.=>`, ""},
		{`no arrow`, `missing "=>"`},
		{`=>x`, "empty regex"},
		{`([a-=>x`, "bad regex"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseMapRule(tc.in)
			if tc.wantErr == "" {
				if err != nil || r.Pattern == nil || r.Source != tc.in {
					t.Fatalf("ParseMapRule(%q) = %+v, %v", tc.in, r, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.in) {
				t.Fatalf("ParseMapRule(%q) error %v, want one naming the rule and %q", tc.in, err, tc.wantErr)
			}
		})
	}
	r := mustRules(t, `^llm\.(.*)$=>language_model.$1`)[0]
	if got, ok := r.apply("llm.model.norm.weight"); !ok || got != "language_model.model.norm.weight" {
		t.Errorf("apply = %q, %v", got, ok)
	}
}

// BenchmarkAlignOpenVLA aligns full OpenVLA-7B name sets, once by the built-in
// rules and once with the timm prefixes missing (every vision tensor through the
// suffix stage).
func BenchmarkAlignOpenVLA(b *testing.B) {
	cs := openvlaCasesN(32, 24, 27)
	base, vla := splitCases(cs)
	bare := rename(base, func(n string) string {
		n = strings.TrimPrefix(n, "vision_backbone.fused_featurizer.")
		return strings.TrimPrefix(n, "vision_backbone.featurizer.")
	})
	b.Run("rules", func(b *testing.B) {
		for b.Loop() {
			Align(base, vla, nil)
		}
	})
	b.Run("suffix", func(b *testing.B) {
		for b.Loop() {
			Align(bare, vla, nil)
		}
	})
}
