package arch

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The tensor lists in testdata are the ones the paper's authors printed from
// the real checkpoints (Niannnnnn/VLA_Parameter_Redundancy_VLM2VLA):
//   - openvla_orig_model_weights.txt: prism-dinosiglip-224px+7b as Prismatic's
//     load() builds it, the whole VLM's flat state dict (dino_featurizer,
//     siglip_featurizer, projector.projector.{0,2,4}, llm_backbone.llm.*,
//     LayerScale gamma);
//   - openvla_fine_model_weights.txt: openvla-7b-finetuned-libero-spatial under
//     DataParallel (hence "module.", which is not in the files on disk);
//   - paligemma_params.txt: google/paligemma-3b-mix-224 as transformers'
//     AutoModel names it;
//   - pi05_vlm_vla_weight_matching.txt: the base/VLA pairs the authors'
//     analyze_vlm_vla_parameter_alignment.py found for π0.5.
//
// (π0.5's own list is ../synth/testdata/pi05_libero_params.txt.)

var shapeDigits = regexp.MustCompile(`\d+`)

// readNamedList reads "NAME  (d0, d1, ...)" (OpenVLA's files) or
// "NAME\tshape=(d0, ...)\tdtype=...\tnumel=N" (π0.5's), dropping trimPrefix
// from every name.
func readNamedList(t *testing.T, path, trimPrefix string) []Named {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Named
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, rest, ok := strings.Cut(line, "\t")
		if !ok {
			name, rest, ok = strings.Cut(line, "  ")
		}
		if !ok {
			t.Fatalf("%s: %q has no shape", path, line)
		}
		if shape, _, found := strings.Cut(strings.TrimPrefix(rest, "shape="), ")"); found {
			rest = shape
		}
		var dims []int64
		for _, d := range shapeDigits.FindAllString(rest, -1) {
			n, err := strconv.ParseInt(d, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			dims = append(dims, n)
		}
		out = append(out, Named{strings.TrimPrefix(name, trimPrefix), dims})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// OpenVLA's real Prismatic base (flat state dict) against the real OpenVLA
// names: all 982 tensors pair, by the Prismatic rule, and every pair the
// authors' weight_mapping (prismatic_openvla/utils.py) makes is among them.
func TestAlignAuthorsOpenVLALists(t *testing.T) {
	base := readNamedList(t, filepath.Join("testdata", "openvla_orig_model_weights.txt"), "")
	vla := readNamedList(t, filepath.Join("testdata", "openvla_fine_model_weights.txt"), "module.")
	if len(base) != 982 || len(vla) != 982 {
		t.Fatalf("lists of %d and %d tensors, want 982 and 982", len(base), len(vla))
	}
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	if n := len(al.BaseOnly) + len(al.VLAOnly) + len(al.Mismatched) + len(al.Ambiguous); n != 0 {
		t.Fatalf("%d tensors left unaligned: base %q, VLA %q, mismatched %d, ambiguous %v",
			n, namesOf(base, al.BaseOnly), namesOf(vla, al.VLAOnly), len(al.Mismatched), al.Ambiguous)
	}
	got := map[string]string{} // base name → VLA name
	for _, p := range al.Pairs {
		got[base[p.Base].Name] = vla[p.VLA].Name
		if p.Rule != RulePrismatic || p.Overlap {
			t.Errorf("%s ↔ %s by %s (overlap %v), want prismatic, equal shapes", base[p.Base].Name, vla[p.VLA].Name, p.Rule, p.Overlap)
		}
	}
	// The authors' prefix maps, as in their weight_mapping (the VLA side
	// without DataParallel's "module.").
	authors := [][2]string{
		{"llm_backbone.llm.model.layers.", "language_model.model.layers."},
		{"vision_backbone.dino_featurizer.blocks.", "vision_backbone.featurizer.blocks."},
		{"vision_backbone.siglip_featurizer.blocks.", "vision_backbone.fused_featurizer.blocks."},
		{"projector.projector.0", "projector.fc1"},
		{"projector.projector.2", "projector.fc2"},
		{"projector.projector.4", "projector.fc3"},
	}
	checked := 0
	for _, b := range base {
		for _, m := range authors {
			if rest, ok := strings.CutPrefix(b.Name, m[0]); ok {
				want := m[1] + rest
				want = strings.Replace(want, ".ls1.gamma", ".ls1.scale_factor", 1) // the HF export's LayerScale name
				want = strings.Replace(want, ".ls2.gamma", ".ls2.scale_factor", 1)
				if got[b.Name] != want {
					t.Errorf("%s pairs with %q, the authors' map says %q", b.Name, got[b.Name], want)
				}
				checked++
				break
			}
		}
	}
	if checked < 900 {
		t.Errorf("only %d base names fall under the authors' maps", checked)
	}
}

// π0.5's real list against PaliGemma's as transformers names it: every pair
// the authors' matching found is ours too; the tied embedding pairs with the
// VLA's lm_head on the 257,152 shared rows; what stays VLA-only is the action
// expert and the action/time projections, which have no counterpart.
func TestAlignAuthorsPi05Lists(t *testing.T) {
	base := readNamedList(t, filepath.Join("testdata", "paligemma_params.txt"), "")
	vla := readNamedList(t, filepath.Join("..", "synth", "testdata", "pi05_libero_params.txt"), "")
	if len(base) != 603 || len(vla) != 812 {
		t.Fatalf("lists of %d and %d tensors, want 603 and 812", len(base), len(vla))
	}
	al := Align(base, vla, nil)
	checkAlignment(t, base, vla, al)
	got := map[string]string{}
	for _, p := range al.Pairs {
		got[base[p.Base].Name] = vla[p.VLA].Name
	}

	f, err := os.ReadFile(filepath.Join("testdata", "pi05_vlm_vla_weight_matching.txt"))
	if err != nil {
		t.Fatal(err)
	}
	matched, _, _ := strings.Cut(string(f), "=== Shape mismatch ===")
	n := 0
	for line := range strings.Lines(matched) {
		fields := strings.Split(strings.TrimSpace(line), "\t")
		if len(fields) < 2 {
			continue
		}
		if n++; got[fields[0]] != fields[1] {
			t.Errorf("%s pairs with %q, the authors' matching says %q", fields[0], got[fields[0]], fields[1])
		}
	}
	if n != 292 {
		t.Errorf("the authors' matching lists %d pairs, want 292", n)
	}
	if v := got["language_model.embed_tokens.weight"]; v != "paligemma_with_expert.paligemma.lm_head.weight" {
		t.Errorf("the base's embed_tokens pairs with %q, want the VLA's tied lm_head", v)
	}
	if len(al.BaseOnly)+len(al.Mismatched)+len(al.Ambiguous) != 0 {
		t.Errorf("base-only %q, mismatched %d, ambiguous %v", namesOf(base, al.BaseOnly), len(al.Mismatched), al.Ambiguous)
	}
	for _, name := range namesOf(vla, al.VLAOnly) {
		if !strings.HasPrefix(name, "paligemma_with_expert.gemma_expert.") && !strings.HasPrefix(name, "action_") && !strings.HasPrefix(name, "time_mlp_") {
			t.Errorf("VLA-only %s: a PaliGemma tensor left unmatched", name)
		}
	}
	if len(al.Pairs) != len(base) {
		t.Errorf("%d pairs, want one per base tensor (%d)", len(al.Pairs), len(base))
	}
}
