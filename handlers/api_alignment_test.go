package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/synth"
)

// genOpenVLAUnder writes a small OpenVLA-7B-shaped pair (real names, real
// layer counts, widths scaled down) under the server's root, in folder ovla.
func genOpenVLAUnder(t *testing.T, root string) {
	t.Helper()
	if _, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: 0.02, Out: filepath.Join(root, "ovla")}); err != nil {
		t.Fatal(err)
	}
}

// The preview of a pair whose DINOv2 file was given an unknown prefix suggests
// the rule; applying it leaves nothing unmatched. The Prismatic training names
// need no rule at all.
func TestAPIPreviewSuggestionsAndPrismatic(t *testing.T) {
	s := newIdleTestServer(t)
	genOpenVLAUnder(t, s.root)
	const rule = `^dinov2\.=>vision_backbone.featurizer.`
	body := func(dinoPrefix string, maps ...string) string {
		b, _ := json.Marshal(map[string]any{
			"base": []string{"ovla/base/prismatic.safetensors", dinoPrefix + "=ovla/base/dinov2.safetensors",
				"model.vision_backbone.siglip_featurizer.=ovla/base/siglip.safetensors"},
			"vla": []string{"ovla/vla"}, "map": append([]string{}, maps...)})
		return string(b)
	}
	code, p := s.do(t, "POST", "/api/preview", body("dinov2."))
	sugg, _ := p["suggestions"].([]any)
	if code != 200 || len(sugg) == 0 || sugg[0].(map[string]any)["rule"] != rule || p["base_only"] == nil {
		t.Fatalf("preview: %d %v", code, p)
	}
	if n := len(p["base_only"].([]any)); n == 0 || sugg[0].(map[string]any)["pairs"].(float64) != float64(n) {
		t.Errorf("the suggestion pairs %v of %d base-only tensors", sugg[0].(map[string]any)["pairs"], n)
	}
	code, p = s.do(t, "POST", "/api/preview", body("dinov2.", rule))
	if code != 200 || len(p["base_only"].([]any))+len(p["vla_only"].([]any)) != 0 || len(p["suggestions"].([]any)) != 0 {
		t.Errorf("with the rule: %d, base-only %v, VLA-only %v, suggestions %v", code, p["base_only"], p["vla_only"], p["suggestions"])
	}
	code, p = s.do(t, "POST", "/api/preview", body("model.vision_backbone.dino_featurizer."))
	if code != 200 || len(p["base_only"].([]any))+len(p["vla_only"].([]any)) != 0 || p["pairs_by_rule"].(map[string]any)["prismatic"] == nil {
		t.Errorf("Prismatic names: %d, base-only %v, VLA-only %v, rules %v", code, p["base_only"], p["vla_only"], p["pairs_by_rule"])
	}
	// Both sides have the padded 32,064-row vocabulary (scaled), as the real pair
	// does: embed_tokens and lm_head are not shape mismatches.
	if m, _ := p["mismatched"].([]any); len(m) != 0 {
		t.Errorf("Prismatic names: mismatched %v, want none", m)
	}
}

// An analysis in which nothing aligns fails, with the reason and the rule
// that fixes it in the error and in the advice.
func TestAPINothingAlignedFails(t *testing.T) {
	s := newTestServer(t)
	genOpenVLAUnder(t, s.root)
	code, c := s.do(t, "POST", "/api/analyses", `{"base": ["dinov2.=ovla/base/dinov2.safetensors"], "vla": ["ovla/vla"]}`)
	if code != 202 {
		t.Fatalf("create: %d %v", code, c)
	}
	a := s.waitDone(t, c["id"].(string))
	errText, _ := a["error"].(string)
	adv, _ := a["advice"].(map[string]any)
	if a["status"] != "failed" || !strings.Contains(errText, "no tensor aligned") || !strings.Contains(errText, `^dinov2\.=>vision_backbone.featurizer.`) || adv == nil {
		t.Fatalf("analysis: %v", a)
	}
	if sugg := adv["suggestions"].([]any); len(sugg) != 1 || sugg[0].(map[string]any)["rule"] != `^dinov2\.=>vision_backbone.featurizer.` {
		t.Errorf("advice: %v", adv)
	}
	// Its page offers the rule, one click from a new analysis with it.
	resp, err := http.Get(s.URL + "/analyses/" + c["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), `data-testid="failed-suggestions"`) || !strings.Contains(string(page), `map=%5Edinov2%5C.%3D%3Evision_backbone.featurizer.`) {
		t.Errorf("the failed analysis's page does not offer the rule")
	}
}

// Geometry and exact travel from the request to the result, are part of its
// cache key, and the preview shows each component's geometry with guesses
// marked and the request's geometry applied.
func TestAPIGeometryAndExact(t *testing.T) {
	s := newTestServer(t)
	code, p := s.do(t, "POST", "/api/preview", fixturePair)
	if code != 200 {
		t.Fatalf("preview: %d %v", code, p)
	}
	geo := map[string]map[string]any{}
	for _, g := range p["geometry"].([]any) {
		m := g.(map[string]any)
		geo[m["component"].(string)] = m
	}
	if geo["vision.siglip"]["guessed"] != true || geo["vision.siglip"]["heads"] != 1.0 || geo["llm"]["guessed"] != false || geo["llm"]["heads"] != 4.0 {
		t.Fatalf("preview geometry: %v", geo)
	}
	withHeads := strings.Replace(fixturePair, "}", `, "geometry": {"vision.siglip": {"heads": 4, "kv_heads": 4}}}`, 1)
	_, p = s.do(t, "POST", "/api/preview", withHeads)
	for _, g := range p["geometry"].([]any) {
		if m := g.(map[string]any); m["component"] == "vision.siglip" && (m["heads"] != 4.0 || m["head_dim"] != 12.0 || m["set"] != true || m["guessed"] != false) {
			t.Errorf("preview with geometry: %v", m)
		}
	}

	ids := map[string]bool{}
	for _, body := range []string{fixturePair, withHeads, strings.Replace(fixturePair, "}", `, "exact": true}`, 1)} {
		code, c := s.do(t, "POST", "/api/analyses", body)
		if code != 202 {
			t.Fatalf("create %s: %d %v", body, code, c)
		}
		a := s.waitDone(t, c["id"].(string))
		if a["status"] != "done" {
			t.Fatalf("%s: %v", body, a)
		}
		ids[a["id"].(string)] = true
		req := a["request"].(map[string]any)
		sum := a["summary"].(map[string]any)
		siglip := sum["geometry"].(map[string]any)["vision.siglip"].(map[string]any)
		guessed := a["advice"].(map[string]any)["geometry_guessed"].([]any)
		switch {
		case strings.Contains(body, "geometry"):
			if siglip["heads"] != 4.0 || len(guessed) != 0 {
				t.Errorf("with geometry: siglip %v, guessed %v", siglip, guessed)
			}
		case strings.Contains(body, "exact"):
			if req["exact"] != true {
				t.Errorf("exact not recorded: %v", req)
			}
		default:
			if siglip["heads"] != 1.0 || fmt.Sprint(guessed) != "[vision.siglip]" {
				t.Errorf("default: siglip %v, guessed %v", siglip, guessed)
			}
		}
	}
	if len(ids) != 3 {
		t.Errorf("three requests with different options gave %d analyses", len(ids))
	}
	// The same options again come from the cache.
	code, c := s.do(t, "POST", "/api/analyses", withHeads)
	if code != 202 || c["cached"] != true {
		t.Errorf("repeated request with geometry: %d %v", code, c)
	}
	for bad, says := range map[string]string{`{"vision.siglip": {"heads": 0}}`: "geometry vision.siglip: heads 0",
		`{"llm": {"heads": 8, "kv_heads": 3}}`: "kv_heads 3 must divide heads 8", `{"llm": {"heads": 8, "groups": 2}}`: `unknown field "groups"`} {
		body := strings.Replace(fixturePair, "}", `, "geometry": `+bad+`}`, 1)
		if code, e := s.do(t, "POST", "/api/analyses", body); code != 400 || !strings.Contains(fmt.Sprint(e["error"]), says) {
			t.Errorf("geometry %s: %d %v, want 400 saying %q", bad, code, e, says)
		}
	}
}

// The composer's resolve warns when a head rule cuts a component whose
// geometry is a guess, and not once the analysis was asked with its heads.
func TestAPIResolveWarnsOnGuessedHeads(t *testing.T) {
	s := newTestServer(t)
	for body, want := range map[string]bool{
		fixturePair: true,
		strings.Replace(fixturePair, "}", `, "geometry": {"vision.siglip": {"heads": 4}}}`, 1): false,
	} {
		_, c := s.do(t, "POST", "/api/analyses", body)
		s.waitDone(t, c["id"].(string))
		code, r := s.do(t, "POST", "/api/analyses/"+c["id"].(string)+"/resolve?units=0", `{"preset": "pi05-light"}`)
		if code != 200 {
			t.Fatalf("resolve: %d %v", code, r)
		}
		got := strings.Contains(fmt.Sprint(r["warnings"]), "vision.siglip (1 heads × 48 (1 KV)) is a guess")
		if got != want {
			t.Errorf("%s: warned %v, want %v (warnings %v)", body, got, want, r["warnings"])
		}
	}
}
