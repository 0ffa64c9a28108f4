package arch

import "testing"

// π0.5 saves PaliGemma's tied head once, as lm_head (the authors' 812-tensor
// list has no paligemma embed_tokens), while its hub PaliGemma base saves it as
// embed_tokens with 64 more vocabulary rows. The two are one matrix and pair by
// the tied rule; the action expert's own, narrower lm_head stays VLA-only.
func TestAlignTiedEmbeddingAcrossNames(t *testing.T) {
	base := []Named{
		{"language_model.model.embed_tokens.weight", []int64{257216, 2048}},
		{"language_model.model.layers.0.mlp.gate_proj.weight", []int64{16384, 2048}},
	}
	vla := []Named{
		{"paligemma_with_expert.paligemma.lm_head.weight", []int64{257152, 2048}},
		{"paligemma_with_expert.gemma_expert.lm_head.weight", []int64{257152, 1024}},
		{"paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.gate_proj.weight", []int64{16384, 2048}},
	}
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	var tied *Pair
	for i := range al.Pairs {
		if al.Pairs[i].Base == 0 {
			tied = &al.Pairs[i]
		}
	}
	if tied == nil || tied.VLA != 0 || tied.Rule != RuleTied || !tied.Overlap {
		t.Fatalf("embed_tokens pairs %+v, want the paligemma lm_head by the tied rule on the overlapping rows", tied)
	}
	if len(al.VLAOnly) != 1 || al.VLAOnly[0] != 1 {
		t.Errorf("VLA-only %v, want only the action expert's lm_head", al.VLAOnly)
	}

	// LeRobot's spelling and the reverse direction (a base that saved the head,
	// a VLA that saved the embedding) pair the same way.
	base2 := []Named{{"lm_head.weight", []int64{1000, 64}}}
	vla2 := []Named{{"model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight", []int64{1000, 64}}}
	if al := Align(base2, vla2, nil); len(al.Pairs) != 1 || al.Pairs[0].Rule != RuleTied || al.Pairs[0].Overlap {
		t.Errorf("reverse direction: pairs %+v, want one tied pair of equal shapes", al.Pairs)
	}
}

// A side that stores both names has untied matrices: nothing crosses over.
func TestAlignTiedNeedsOneNamePerSide(t *testing.T) {
	for name, c := range map[string]struct{ base, vla []Named }{
		"base stores both": {
			base: []Named{{"model.embed_tokens.weight", []int64{100, 8}}, {"lm_head.weight", []int64{90, 8}}},
			vla:  []Named{{"transformer.lm_head.weight", []int64{100, 8}}},
		},
		"vla stores both": {
			base: []Named{{"model.embed_tokens.weight", []int64{100, 8}}},
			vla:  []Named{{"lm_head.weight", []int64{100, 8}}, {"foo.embed_tokens.weight", []int64{7, 8}}},
		},
		"no shape pairs": {
			base: []Named{{"model.embed_tokens.weight", []int64{100, 8}}},
			vla:  []Named{{"lm_head.weight", []int64{100, 16}}},
		},
		"two heads pair": {
			base: []Named{{"model.embed_tokens.weight", []int64{100, 8}}},
			vla:  []Named{{"a.lm_head.weight", []int64{100, 8}}, {"b.lm_head.weight", []int64{100, 8}}},
		},
	} {
		al := Align(c.base, c.vla, nil)
		checkAlignment(t, c.base, c.vla, al)
		for _, p := range al.Pairs {
			if p.Rule == RuleTied {
				t.Errorf("%s: tied pair %q ↔ %q made", name, c.base[p.Base].Name, c.vla[p.VLA].Name)
			}
		}
	}
}
