package arch

import (
	"path/filepath"
	"strings"
	"testing"
)

// explain aligns the pair as the engine does and explains what stays
// unmatched.
func explain(t *testing.T, base, vla []Named, rules []MapRule) ([]UnmatchedGroup, []string) {
	t.Helper()
	al := Align(base, vla, rules)
	var paired []string
	for _, p := range al.Pairs {
		paired = append(paired, vla[p.VLA].Name)
	}
	for _, m := range al.Mismatched {
		paired = append(paired, vla[m.VLA].Name)
	}
	g := ExplainUnmatched(paired, namesOf(base, al.BaseOnly), namesOf(vla, al.VLAOnly), Suggest(base, vla, al))
	r := UnmatchedReasons(g)
	t.Logf("reasons: %q", r)
	return g, r
}

func groupOf(gs []UnmatchedGroup, side, comp string) *UnmatchedGroup {
	for i := range gs {
		if gs[i].Side == side && gs[i].Component == comp {
			return &gs[i]
		}
	}
	return nil
}

// OpenVLA's real lists, the Prismatic base given only its LLM and projector
// (prismatic.safetensors without the vision encoders' files): every VLA-only
// tensor is DINOv2's or SigLIP's, both missing from the base, and the
// explanation says to add their files under the VLA's prefixes, not that they
// are the VLA's own modules.
func TestExplainUnmatchedOpenVLABaseWithoutVision(t *testing.T) {
	all := readNamedList(t, filepath.Join("testdata", "openvla_orig_model_weights.txt"), "")
	vla := readNamedList(t, filepath.Join("testdata", "openvla_fine_model_weights.txt"), "module.")
	var base []Named
	for _, n := range all {
		if !strings.HasPrefix(n.Name, "vision_backbone.") {
			base = append(base, n)
		}
	}
	groups, reasons := explain(t, base, vla, nil)
	if len(groups) != 2 {
		t.Fatalf("groups %+v, want DINOv2's and SigLIP's", groups)
	}
	for comp, prefix := range map[string]string{CompDINOv2: "vision_backbone.featurizer.", CompSigLIP: "vision_backbone.fused_featurizer."} {
		g := groupOf(groups, "vla", comp)
		if g == nil || g.Cause != CauseMissing || g.Prefix != prefix || g.Paired != 0 || g.Count < 300 {
			t.Errorf("%s: %+v, want missing from the base under %s", comp, g, prefix)
		}
	}
	if len(reasons) != 1 {
		t.Fatalf("reasons %q, want one", reasons)
	}
	for _, want := range []string{"the base has no vision.dinov2 / vision.siglip tensors", "add the vision encoders' files",
		"--base vision_backbone.featurizer.=FILE", "--base vision_backbone.fused_featurizer.=FILE"} {
		if !strings.Contains(reasons[0], want) {
			t.Errorf("%q lacks %q", reasons[0], want)
		}
	}
	if strings.Contains(reasons[0], "own modules") || strings.Contains(reasons[0], "expected") {
		t.Errorf("%q blames the VLA's own modules", reasons[0])
	}
}

// π0.5 against PaliGemma (the authors' lists): what stays VLA-only is the
// action expert and the action/time projections, the VLA's own modules,
// expected; nothing is said to be missing from the base.
func TestExplainUnmatchedPi05ActionExpert(t *testing.T) {
	base := readNamedList(t, filepath.Join("testdata", "paligemma_params.txt"), "")
	vla := readNamedList(t, filepath.Join("..", "synth", "testdata", "pi05_libero_params.txt"), "")
	groups, reasons := explain(t, base, vla, nil)
	for _, g := range groups {
		if g.Side == "vla" && g.Cause != CauseVLAOwn {
			t.Errorf("VLA group %+v, want only the VLA's own modules", g)
		}
	}
	if g := groupOf(groups, "vla", CompActionExpert); g == nil || g.Cause != CauseVLAOwn || g.Count < 100 {
		t.Errorf("action expert: %+v", g)
	}
	if g := groupOf(groups, "vla", CompActionHead); g == nil || g.Cause != CauseVLAOwn {
		t.Errorf("action head: %+v", g)
	}
	last := reasons[len(reasons)-1]
	if !strings.Contains(last, "action_expert and action_head") || !strings.Contains(last, "the VLA's own modules, which have no base counterpart (expected)") {
		t.Errorf("reasons %q", reasons)
	}
	for _, r := range reasons {
		if strings.Contains(r, "the base has no") {
			t.Errorf("%q: the base has every component π0.5 shares with it", r)
		}
	}
}

// The DINOv2 file given under a prefix nothing knows: DINOv2 is renamed (the
// suggested rule pairs it), the base-only names are that rule's and form no
// group of their own; with only that file, the LLM, SigLIP and projector are
// missing. A few VLA tensors of a component that otherwise aligned are
// partial; base tensors of a component whose VLA tensors stay unmatched,
// with other shapes, are unpaired; a leftover base tensor is base-only.
func TestExplainUnmatchedCauses(t *testing.T) {
	cs := openvlaCasesN(2, 2, 2)
	var base, vla []Named
	for _, c := range cs {
		b := c.base
		if rest, ok := strings.CutPrefix(b, "vision_backbone.featurizer."); ok {
			b = "dinov2." + rest
		}
		base = append(base, Named{b, c.baseShape})
		vla = append(vla, Named{c.vla, c.vlaShape})
	}
	groups, reasons := explain(t, base, vla, nil)
	g := groupOf(groups, "vla", CompDINOv2)
	if g == nil || g.Cause != CauseRenamed || g.Rule != `^dinov2\.=>vision_backbone.featurizer.` || !strings.HasPrefix(g.BaseExample, "dinov2.") || g.RulePairs < 2 {
		t.Fatalf("DINOv2 under dinov2.: %+v", g)
	}
	for _, g := range groups {
		if g.Side == "base" {
			t.Errorf("base group %+v: the suggested rule renames every base-only tensor", g)
		}
	}
	if len(reasons) != 1 || !strings.Contains(reasons[0], "names its vision.dinov2 tensors differently") || !strings.Contains(reasons[0], `--map '^dinov2\.=>vision_backbone.featurizer.'`) {
		t.Errorf("reasons %q", reasons)
	}

	// Only that file: the rest of the VLA is missing from the base.
	var dino []Named
	for _, n := range base {
		if strings.HasPrefix(n.Name, "dinov2.") {
			dino = append(dino, n)
		}
	}
	groups, reasons = explain(t, dino, vla, nil)
	for _, c := range []string{CompLLM, CompSigLIP, CompProjector, CompEmbed, CompLMHead} {
		if g := groupOf(groups, "vla", c); g == nil || g.Cause != CauseMissing {
			t.Errorf("%s: %+v, want missing", c, g)
		}
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0], "the base has no") || !strings.Contains(reasons[0], "add the files that hold them") ||
		!strings.Contains(reasons[1], "differently") {
		t.Errorf("reasons %q", reasons)
	}

	// Partial, unpaired, base-only.
	base = []Named{
		{"model.layers.0.self_attn.q_proj.weight", []int64{8, 8}},
		{"model.layers.0.mlp.up_proj.weight", []int64{16, 8}},
		{"vision_model.encoder.layers.0.mlp.fc1.weight", []int64{32, 12}},
		{"head.weight", []int64{10, 12}},
	}
	vla = []Named{
		{"language_model.model.layers.0.self_attn.q_proj.weight", []int64{8, 8}},
		{"language_model.model.layers.0.mlp.up_proj.weight", []int64{16, 8}},
		{"language_model.model.layers.1.mlp.up_proj.weight", []int64{16, 8}},
		{"vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight", []int64{48, 16}},
		{"extra.thing", []int64{3}},
	}
	groups, reasons = explain(t, base, vla, nil)
	want := map[[2]string]string{
		{"vla", CompLLM}:    CausePartial,
		{"vla", CompSigLIP}: CauseUnpaired,
		{"vla", CompOther}:  CauseUnrecognised,
		{"base", CompOther}: CauseBaseOnly,
	}
	if len(groups) != len(want) {
		t.Errorf("groups %+v, want %v", groups, want)
	}
	for k, cause := range want {
		if g := groupOf(groups, k[0], k[1]); g == nil || g.Cause != cause {
			t.Errorf("%v: %+v, want %s", k, g, cause)
		}
	}
	if g := groupOf(groups, "vla", CompLLM); g == nil || g.Count != 1 || g.Paired != 2 {
		t.Errorf("LLM: %+v, want 1 of 3 unmatched", g)
	}
	if g := groupOf(groups, "vla", CompSigLIP); g == nil || g.BaseCount != 1 || g.BaseExample != "vision_model.encoder.layers.0.mlp.fc1.weight" {
		t.Errorf("SigLIP: %+v, want the base's SigLIP tensor beside it", g)
	}
	joined := strings.Join(reasons, "\n")
	for _, w := range []string{"1 of the VLA's 3 llm tensors has no base counterpart", "pair neither by name nor by shape",
		"1 tensor of the base (e.g. head.weight) has no VLA counterpart", "1 VLA tensor of no known component"} {
		if !strings.Contains(joined, w) {
			t.Errorf("reasons %q lack %q", reasons, w)
		}
	}
}

func TestComponentPrefix(t *testing.T) {
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"vision_backbone.featurizer.blocks.0.attn.qkv.weight", "vision_backbone.featurizer.cls_token"}, "vision_backbone.featurizer."},
		{[]string{"language_model.model.layers.0.mlp.up_proj.weight", "language_model.model.norm.weight"}, "language_model."},
		{[]string{"a.vision_tower.vision_model.encoder.layers.0.fc1.weight", "a.vision_tower.vision_model.post_layernorm.weight"}, "a.vision_tower."},
		{[]string{"model.layers.0.q.weight", "model.norm.weight"}, ""},
		{[]string{"blocks.0.a", "blocks.1.a"}, "blocks."},
		{[]string{"x.a", "y.a"}, ""},
		{[]string{"only.one"}, ""},
	} {
		if got := componentPrefix(c.names); got != c.want {
			t.Errorf("componentPrefix(%q) = %q, want %q", c.names, got, c.want)
		}
	}
}
