package analysis

import (
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/arch"
)

// A result's lists explain its unmatched tensors: compared pairs and pairs of
// different shapes both count as the base having the component, so only a
// component with neither is missing.
func TestExplainUnmatchedResult(t *testing.T) {
	res := &Result{
		Tensors:    []TensorStats{{VLA: "language_model.model.layers.0.mlp.up_proj.weight"}},
		Mismatched: []Mismatch{{Base: "model.projector.fc1.weight", VLA: "projector.fc1.weight"}},
		VLAOnly: []string{"projector.fc2.weight", "vision_backbone.featurizer.blocks.0.attn.qkv.weight",
			"vision_backbone.featurizer.blocks.0.mlp.fc1.weight", "paligemma_with_expert.gemma_expert.model.layers.0.mlp.up_proj.weight"},
		BaseOnly: []string{},
	}
	got := map[string]string{}
	for _, g := range ExplainUnmatched(res) {
		got[g.Component] = g.Cause
	}
	want := map[string]string{arch.CompProjector: arch.CausePartial, arch.CompDINOv2: arch.CauseMissing, arch.CompActionExpert: arch.CauseVLAOwn}
	if len(got) != len(want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	for c, cause := range want {
		if got[c] != cause {
			t.Errorf("%s: %q, want %q", c, got[c], cause)
		}
	}
}

// A failure in which nothing aligned says why, group by group, and gives each
// suggested rule once: in the reason that names it, or after "try".
func TestNoAlignmentErrorReasons(t *testing.T) {
	renamed := arch.Suggestion{Rule: `^dinov2\.=>vision_backbone.featurizer.`, Pairs: 4}
	other := arch.Suggestion{Rule: `^x\.=>y.`, Pairs: 2}
	e := &NoAlignmentError{BaseTensors: 6, VLATensors: 9, Suggestions: []arch.Suggestion{renamed, other}, Unmatched: []arch.UnmatchedGroup{
		{Side: "vla", Component: arch.CompDINOv2, Cause: arch.CauseRenamed, Count: 4, Rule: renamed.Rule, RulePairs: 4, Example: "vision_backbone.featurizer.a.weight", BaseExample: "dinov2.a.weight"},
		{Side: "vla", Component: arch.CompSigLIP, Cause: arch.CauseMissing, Count: 5, Prefix: "vision_backbone.fused_featurizer."},
	}}
	msg := e.Error()
	for _, want := range []string{"no tensor aligned between the base (6 tensors) and the VLA (9 tensors); the base has no vision.siglip tensors",
		"--base vision_backbone.fused_featurizer.=FILE", "names its vision.dinov2 tensors differently", "; try --map '^x\\.=>y.' (pairs 2)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Count(msg, renamed.Rule) != 1 || strings.Contains(msg, "\n") {
		t.Errorf("%q: want one line, each rule once", msg)
	}
	if msg := (&NoAlignmentError{BaseTensors: 1, VLATensors: 1}).Error(); !strings.HasSuffix(msg, "check the sources and their PREFIX= or add --map rules") {
		t.Errorf("with no reason and no rule: %q", msg)
	}
}
