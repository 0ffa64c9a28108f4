package torchzip

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/deltascope/deltascope/analysis/arch"
)

// A Prismatic training checkpoint as its code saves it, torch.save of
// {"model": {"vision_backbone": {...}, "projector": {...}, "llm_backbone":
// {...}}} with the modules' own state-dict names (DinoSigLIP's
// dino_featurizer / siglip_featurizer, the projector's Sequential indices,
// LayerScale's gamma), flattens to names that align with OpenVLA's HF names,
// every pair by the Prismatic rule.
func TestPrismaticCheckpointAlignsWithOpenVLA(t *testing.T) {
	type tensorSpec struct {
		module, name, vla string
		shape             []int32
	}
	specs := []tensorSpec{
		{"vision_backbone", "dino_featurizer.blocks.0.attn.qkv.weight", "vision_backbone.featurizer.blocks.0.attn.qkv.weight", []int32{12, 4}},
		{"vision_backbone", "dino_featurizer.blocks.0.ls1.gamma", "vision_backbone.featurizer.blocks.0.ls1.scale_factor", []int32{4}},
		{"vision_backbone", "dino_featurizer.blocks.0.ls2.gamma", "vision_backbone.featurizer.blocks.0.ls2.scale_factor", []int32{4}},
		{"vision_backbone", "siglip_featurizer.blocks.0.attn.qkv.weight", "vision_backbone.fused_featurizer.blocks.0.attn.qkv.weight", []int32{15, 5}},
		{"vision_backbone", "siglip_featurizer.blocks.0.mlp.fc1.weight", "vision_backbone.fused_featurizer.blocks.0.mlp.fc1.weight", []int32{7, 5}},
		{"projector", "projector.0.weight", "projector.fc1.weight", []int32{9, 9}},
		{"projector", "projector.0.bias", "projector.fc1.bias", []int32{9}},
		{"projector", "projector.2.weight", "projector.fc2.weight", []int32{6, 9}},
		{"projector", "projector.4.weight", "projector.fc3.weight", []int32{6, 6}},
		{"llm_backbone", "llm.model.embed_tokens.weight", "language_model.model.embed_tokens.weight", []int32{10, 6}},
		{"llm_backbone", "llm.model.layers.0.self_attn.q_proj.weight", "language_model.model.layers.0.self_attn.q_proj.weight", []int32{6, 6}},
		{"llm_backbone", "llm.model.layers.0.mlp.gate_proj.weight", "language_model.model.layers.0.mlp.gate_proj.weight", []int32{8, 6}},
		{"llm_backbone", "llm.lm_head.weight", "language_model.lm_head.weight", []int32{10, 6}},
	}
	// One float storage holds every tensor, one after another.
	var total int32
	for _, s := range specs {
		n := int32(1)
		for _, d := range s.shape {
			n *= d
		}
		total += n
	}
	p := newPickle().op(opEmptyDict).str("model").op(opEmptyDict)
	var off int32
	for _, module := range []string{"vision_backbone", "projector", "llm_backbone"} {
		p.str(module).op(opEmptyDict)
		for _, s := range specs {
			if s.module != module {
				continue
			}
			numel, stride := int32(1), make([]int32, len(s.shape))
			for i := len(s.shape) - 1; i >= 0; i-- {
				stride[i] = numel
				numel *= s.shape[i]
			}
			p.str(s.name).tensor("FloatStorage", "0", total, off, s.shape, stride).op(opSetitem)
			off += numel
		}
		p.op(opSetitem) // model[module] = its state dict
	}
	p.op(opSetitem) // {"model": ...}
	path := filepath.Join(t.TempDir(), "prism-dinosiglip-224px+7b.pt")
	if err := os.WriteFile(path, torchZip(t, p.stop(), int(4*total)), 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := readArchive(t, path)
	if len(a.Tensors) != len(specs) {
		t.Fatalf("%d tensors, want %d", len(a.Tensors), len(specs))
	}
	var base, vla []arch.Named
	want := map[string]string{}
	for _, s := range specs {
		shape := make([]int64, len(s.shape))
		for i, d := range s.shape {
			shape[i] = int64(d)
		}
		vla = append(vla, arch.Named{Name: s.vla, Shape: shape})
		want[s.vla] = "model." + s.module + "." + s.name
	}
	for _, e := range a.Tensors {
		base = append(base, arch.Named{Name: e.Name, Shape: e.Shape})
	}
	al := arch.Align(base, vla, nil)
	if len(al.BaseOnly)+len(al.VLAOnly)+len(al.Mismatched) != 0 {
		t.Fatalf("unaligned: %+v", al)
	}
	for _, pr := range al.Pairs {
		if got := base[pr.Base].Name; got != want[vla[pr.VLA].Name] || pr.Rule != arch.RulePrismatic {
			t.Errorf("%s paired with %s by %s, want %s by prismatic", vla[pr.VLA].Name, got, pr.Rule, want[vla[pr.VLA].Name])
		}
	}
}
