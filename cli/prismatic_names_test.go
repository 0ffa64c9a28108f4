package cli

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// renameTensors copies a safetensors file to dst with every tensor renamed by
// rename; the data and offsets stay as they are, so only the header changes.
func renameTensors(t *testing.T, src, dst string, rename func(string) string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	out := map[string]json.RawMessage{}
	for name, v := range hdr {
		if name != "__metadata__" {
			name = rename(name)
		}
		out[name] = v
	}
	h, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	h = append(h, bytes.Repeat([]byte(" "), (8-len(h)%8)%8)...) // keep the data 8-byte aligned
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(h)))
	buf.Write(h)
	buf.Write(b[8+n:])
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The OpenVLA base as the Prismatic code names it, in every spelling issue 11
// lists, stored in files with those names (no SRC prefix does the work):
// the whole VLM's flat state dict or the training checkpoint nested under
// "model.", the projector as projector.projector.{0,2,4} or projector.{0,2,4},
// the fused backbone's dino_featurizer/siglip_featurizer or a single
// backbone's featurizer, LayerScale as gamma. Every tensor of the generated
// OpenVLA pair (982 at any scale) aligns, analyze --strict passes, and the
// LayerScale pairs are gamma ↔ scale_factor.
func TestAnalyzePrismaticNamesInFiles(t *testing.T) {
	pair := genOpenVLA(t)
	cases := []struct {
		name, outer, projector, dino, siglip string
	}{
		{"flat", "", "projector.projector.", "vision_backbone.dino_featurizer.", "vision_backbone.siglip_featurizer."},
		{"flat, bare projector", "", "projector.", "vision_backbone.dino_featurizer.", "vision_backbone.siglip_featurizer."},
		{"nested", "model.", "projector.projector.", "vision_backbone.dino_featurizer.", "vision_backbone.siglip_featurizer."},
		{"nested, bare projector", "model.", "projector.", "vision_backbone.dino_featurizer.", "vision_backbone.siglip_featurizer."},
		// A single-backbone Prismatic names its encoder featurizer; here the
		// DINOv2 file is that backbone's (the SigLIP one stays the fused form).
		{"single featurizer, nested", "model.", "projector.projector.", "vision_backbone.featurizer.", "vision_backbone.siglip_featurizer."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			llm := filepath.Join(dir, "prismatic.safetensors")
			renameTensors(t, filepath.Join(pair, "base", "prismatic.safetensors"), llm, func(n string) string {
				// The generator writes model.llm_backbone.llm.* and model.projector.projector.N.*.
				n = strings.TrimPrefix(n, "model.")
				if rest, ok := strings.CutPrefix(n, "projector.projector."); ok {
					n = tc.projector + rest
				}
				return tc.outer + n
			})
			dino := filepath.Join(dir, "dinov2.safetensors")
			renameTensors(t, filepath.Join(pair, "base", "dinov2.safetensors"), dino, func(n string) string { return tc.outer + tc.dino + n })
			siglip := filepath.Join(dir, "siglip.safetensors")
			renameTensors(t, filepath.Join(pair, "base", "siglip.safetensors"), siglip, func(n string) string { return tc.outer + tc.siglip + n })

			out := filepath.Join(dir, "a.json")
			code, _, stderr := run(t, "analyze", "--strict", "--json", out,
				"--base", llm, "--base", dino, "--base", siglip, "--vla", filepath.Join(pair, "vla"))
			if code != 0 {
				t.Fatalf("analyze --strict: exit %d, %s", code, stderr)
			}
			res := readResult(t, out)
			if n := len(res.Tensors); n != 982 || len(res.BaseOnly)+len(res.VLAOnly) != 0 {
				t.Fatalf("%d aligned, base-only %q, VLA-only %q; want all 982", n, res.BaseOnly, res.VLAOnly)
			}
			gammas := 0
			for _, s := range res.Tensors {
				if strings.HasSuffix(s.VLA, "scale_factor") {
					if !strings.HasSuffix(s.Base, strings.TrimSuffix(s.VLA[strings.LastIndex(s.VLA, ".ls"):], "scale_factor")+"gamma") {
						t.Errorf("%s paired with %s", s.VLA, s.Base)
					}
					gammas++
				}
				if strings.HasPrefix(s.VLA, "projector.fc") {
					idx := map[string]string{"1": "0", "2": "2", "3": "4"}[s.VLA[len("projector.fc"):len("projector.fc")+1]]
					if want := tc.outer + tc.projector + idx + "."; !strings.HasPrefix(s.Base, want) {
						t.Errorf("%s paired with %s, want %s*", s.VLA, s.Base, want)
					}
				}
			}
			if gammas != 48 {
				t.Errorf("%d LayerScale pairs, want 48 (24 blocks × 2)", gammas)
			}
		})
	}
}
