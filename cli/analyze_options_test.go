package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/store"
)

func TestParseHeads(t *testing.T) {
	got, err := parseHeads([]string{"vision.siglip=16", "llm=8:1"})
	if err != nil || got["vision.siglip"] != (arch.Geometry{Heads: 16, KVHeads: 16}) || got["llm"] != (arch.Geometry{Heads: 8, KVHeads: 1}) {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, bad := range []string{"siglip", "=4", "llm=0", "llm=x", "llm=8:3", "llm=8:0", "llm=8:"} {
		if _, err := parseHeads([]string{bad}); err == nil || !strings.Contains(err.Error(), "--heads") {
			t.Errorf("%q: err %v, want one naming --heads", bad, err)
		}
	}
	if _, err := parseHeads([]string{"llm=8", "llm=4"}); err == nil {
		t.Error("a component given twice is accepted")
	}
}

// run runs the command line and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	code := Main(args, Env{Stdout: &stdout, Stderr: &stderr})
	return code, stdout.String(), stderr.String()
}

// genOpenVLA writes a small OpenVLA-7B-shaped pair (real names, 24 DINOv2 and
// 27 SigLIP blocks, 32 Llama layers; widths scaled down) and returns its folder.
func genOpenVLA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pair")
	if code, _, stderr := run(t, "gen", "--preset", "openvla-7b", "--scale", "0.02", "--out", dir); code != 0 {
		t.Fatalf("gen: %s", stderr)
	}
	return dir
}

func readResult(t *testing.T, path string) *analysis.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res analysis.Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

// The Prismatic base as its training code names it — a checkpoint
// {"model": {"vision_backbone": {"dino_featurizer": …, "siglip_featurizer": …},
// "projector": {"projector": …}, "llm_backbone": {"llm": …}}} flattened, with
// DINOv2 LayerScale as gamma — against OpenVLA's HF names: everything aligns
// with no --map rule, and nothing is reported unmatched.
func TestAnalyzePrismaticTrainingNames(t *testing.T) {
	dir := genOpenVLA(t)
	out := filepath.Join(t.TempDir(), "a.json")
	code, _, stderr := run(t, "analyze", "--json", out, "--strict",
		"--base", filepath.Join(dir, "base", "prismatic.safetensors"),
		"--base", "model.vision_backbone.dino_featurizer.="+filepath.Join(dir, "base", "dinov2.safetensors"),
		"--base", "model.vision_backbone.siglip_featurizer.="+filepath.Join(dir, "base", "siglip.safetensors"),
		"--vla", filepath.Join(dir, "vla"))
	if code != 0 || strings.Contains(stderr, "unmatched") {
		t.Fatalf("analyze --strict: exit %d, stderr %q", code, stderr)
	}
	res := readResult(t, out)
	rules := map[string]int{}
	for _, s := range res.Tensors {
		if strings.HasPrefix(s.VLA, "vision_backbone.") || strings.HasPrefix(s.VLA, "projector.") || strings.HasPrefix(s.VLA, "language_model.") {
			rules[s.Rule]++
		}
		if strings.HasSuffix(s.VLA, ".ls1.scale_factor") && !strings.HasSuffix(s.Base, ".ls1.gamma") {
			t.Errorf("%s paired with %s", s.VLA, s.Base)
		}
	}
	if len(res.BaseOnly)+len(res.VLAOnly) != 0 || len(res.Tensors) < 900 || rules["prismatic"] != len(res.Tensors) {
		t.Errorf("%d aligned (rules %v), base-only %d, VLA-only %d", len(res.Tensors), rules, len(res.BaseOnly), len(res.VLAOnly))
	}
	// The base has Prismatic's padded 32,064-row vocabulary, as OpenVLA does:
	// embed_tokens and lm_head pair with equal shapes, nothing on an overlap.
	if len(res.Mismatched) != 0 {
		t.Errorf("mismatched %+v, want none", res.Mismatched)
	}
}

// Encoders loaded under a prefix nothing knows: stderr says how much is
// unmatched and suggests the rule; --strict fails; the suggested rule fixes
// it. A pair in which nothing aligns fails with the reason and the rule.
func TestAnalyzeUnmatchedSuggestions(t *testing.T) {
	dir := genOpenVLA(t)
	base := []string{"--base", filepath.Join(dir, "base", "prismatic.safetensors"),
		"--base", "dinov2.=" + filepath.Join(dir, "base", "dinov2.safetensors"),
		"--base", "vision_backbone.fused_featurizer.=" + filepath.Join(dir, "base", "siglip.safetensors")}
	vla := []string{"--vla", filepath.Join(dir, "vla")}
	args := append(append([]string{"analyze"}, base...), vla...)
	const rule = `^dinov2\.=>vision_backbone.featurizer.`
	code, stdout, stderr := run(t, args...)
	if code != 0 || !strings.Contains(stderr, "unmatched: ") || !strings.Contains(stderr, "try --map '"+rule+"'") || !strings.Contains(stdout, "aligned ") {
		t.Fatalf("analyze: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
	// A failure is one stderr line (the CLI's contract), carrying the counts
	// and the suggested rule.
	if code, stdout, stderr := run(t, append(args, "--strict")...); code == 0 || !strings.Contains(stderr, "--strict") ||
		strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "--map '"+rule+"'") || !strings.Contains(stdout, "aligned ") {
		t.Errorf("analyze --strict: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := run(t, append(args, "--strict", "--map", rule)...); code != 0 || strings.Contains(stderr, "unmatched") {
		t.Errorf("with the suggested rule: exit %d, stderr %q", code, stderr)
	}

	// Only the encoder, under the unknown prefix: nothing aligns.
	data := t.TempDir()
	code, stdout, stderr = run(t, "analyze", "--data", data, "--base", "dinov2."+"="+filepath.Join(dir, "base", "dinov2.safetensors"), "--vla", filepath.Join(dir, "vla"))
	if code == 0 || !strings.Contains(stderr, "no tensor aligned") || !strings.Contains(stderr, "--map '"+rule+"'") || strings.Count(stderr, "\n") != 1 || strings.Contains(stdout, "ΔW") {
		t.Fatalf("nothing aligned: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, err := db.List(context.Background(), 5)
	if err != nil || len(list) != 1 || list[0].Status != store.StatusFailed || !strings.Contains(list[0].Error, "no tensor aligned") ||
		list[0].Advice == nil || len(list[0].Advice.Suggestions) != 1 || list[0].Advice.Suggestions[0].Rule != rule {
		t.Fatalf("stored: %+v, %v", list, err)
	}
}

// --heads sets a component's geometry (and a guessed one stops being a guess);
// --exact is recorded; both are part of the cache key of --data.
func TestAnalyzeHeadsAndExact(t *testing.T) {
	pair := []string{"--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors")}
	data := t.TempDir()
	analyze := func(extra ...string) (*analysis.Result, string) {
		out := filepath.Join(t.TempDir(), "a.json")
		code, stdout, stderr := run(t, append(append([]string{"analyze", "--data", data, "--json", out}, pair...), extra...)...)
		if code != 0 {
			t.Fatalf("analyze %v: %s", extra, stderr)
		}
		return readResult(t, out), stdout
	}
	def, stdout := analyze()
	if def.Exact || def.Geometry["vision.siglip"].Heads != 1 || len(def.GeometryGuessed) != 1 || def.GeometryGuessed[0] != "vision.siglip" {
		t.Fatalf("default: exact %v, geometry %v, guessed %v", def.Exact, def.Geometry, def.GeometryGuessed)
	}
	if !strings.Contains(stdout, "VLA's precision") {
		t.Errorf("the summary does not say how pairs were compared: %q", stdout)
	}
	heads, _ := analyze("--heads", "vision.siglip=4")
	if g := heads.Geometry["vision.siglip"]; g != (arch.Geometry{Heads: 4, KVHeads: 4, HeadDim: 12}) || len(heads.GeometryGuessed) != 0 {
		t.Errorf("--heads vision.siglip=4: geometry %v, guessed %v", g, heads.GeometryGuessed)
	}
	exact, _ := analyze("--exact")
	if !exact.Exact {
		t.Error("--exact not recorded")
	}
	var patch string
	for i, s := range def.Tensors {
		if strings.HasSuffix(s.VLA, "patch_embedding.weight") {
			patch = s.VLA
			if s.FroDelta != 0 || !(exact.Tensors[i].FroDelta > 0) {
				t.Errorf("frozen %s: ‖ΔW‖ %g by default, %g exact", s.VLA, s.FroDelta, exact.Tensors[i].FroDelta)
			}
		}
	}
	if patch == "" {
		t.Fatal("no patch embedding in the fixture's result")
	}
	db, err := store.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	list, _ := db.List(context.Background(), 10)
	keys := map[string]bool{}
	for _, a := range list {
		keys[a.CacheKey] = true
	}
	if len(list) != 3 || len(keys) != 3 {
		t.Errorf("%d analyses with %d cache keys, want 3 and 3", len(list), len(keys))
	}
	// The same options again: answered from the cache, no new analysis.
	analyze("--exact")
	if list, _ = db.List(context.Background(), 10); len(list) != 3 {
		t.Errorf("a repeated --exact analysis was computed again (%d analyses)", len(list))
	}
}

// mask warns when a head rule runs on a guessed geometry, and not once
// --heads sets it.
func TestMaskWarnsOnGuessedHeads(t *testing.T) {
	pair := []string{"--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors")}
	for _, tc := range []struct {
		heads []string
		warn  bool
	}{{nil, true}, {[]string{"--heads", "vision.siglip=4"}, false}} {
		out := filepath.Join(t.TempDir(), "r.json")
		args := append(append([]string{"mask", "--preset", "pi05-light", "--export", "recipe", "--out", out}, pair...), tc.heads...)
		code, stdout, stderr := run(t, args...)
		if code != 0 {
			t.Fatalf("mask %v: %s", tc.heads, stderr)
		}
		if got := strings.Contains(stdout, "vision.siglip (1 heads × 48 (1 KV)) is a guess"); got != tc.warn {
			t.Errorf("mask %v: warned %v, want %v\n%s", tc.heads, got, tc.warn, stdout)
		}
	}
}
