package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// The OpenVLA pair's base given only prismatic.safetensors (the LLM and the
// projector, without the vision encoders' files): stderr says that the base
// has no DINOv2 or SigLIP tensors and which --base PREFIX=FILE would add
// them, not that they are the VLA's own modules; --strict's one-line verdict
// says the same. With only the DINOv2 file under a prefix nothing knows,
// nothing aligns, and the failure says what is missing and what is renamed.
func TestAnalyzeExplainsUnmatched(t *testing.T) {
	dir := genOpenVLA(t)
	vla := filepath.Join(dir, "vla")
	args := []string{"analyze", "--data", t.TempDir(), "--base", filepath.Join(dir, "base", "prismatic.safetensors"), "--vla", vla}
	code, _, stderr := run(t, args...)
	const missing = "the base has no vision.dinov2 / vision.siglip tensors"
	if code != 0 || !strings.Contains(stderr, "\n  "+missing) || !strings.Contains(stderr, "add the vision encoders' files") ||
		!strings.Contains(stderr, "--base vision_backbone.featurizer.=FILE") || !strings.Contains(stderr, "--base vision_backbone.fused_featurizer.=FILE") {
		t.Errorf("analyze: exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stderr, "own modules") || strings.Contains(stderr, "action") {
		t.Errorf("stderr blames the VLA's own modules: %q", stderr)
	}
	if code, _, stderr := run(t, append(args, "--strict")...); code == 0 || !strings.Contains(stderr, missing) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("--strict: exit %d, stderr %q", code, stderr)
	}

	code, _, stderr = run(t, "analyze", "--data", t.TempDir(), "--base", "dinov2.="+filepath.Join(dir, "base", "dinov2.safetensors"), "--vla", vla)
	for _, want := range []string{"no tensor aligned", "the base has no embed / llm / lm_head / projector / vision.siglip tensors",
		"--base language_model.=FILE", "the base names its vision.dinov2 tensors differently", `--map '^dinov2\.=>vision_backbone.featurizer.'`} {
		if code == 0 || !strings.Contains(stderr, want) {
			t.Errorf("nothing aligned: exit %d, stderr %q lacks %q", code, stderr, want)
		}
	}
	if strings.Count(stderr, `--map '^dinov2\.=>`) != 1 {
		t.Errorf("the rule is given more than once: %q", stderr)
	}
}
