package arch

import (
	"fmt"
	"testing"
)

func TestClassify(t *testing.T) {
	type c = Class
	cases := []struct {
		name  string
		shape []int64
		want  Class
	}{
		// OpenVLA HF: Llama-2 language model.
		{"language_model.model.embed_tokens.weight", []int64{32064, 4096}, c{CompEmbed, -1, KindEmbed, ""}},
		{"language_model.lm_head.weight", []int64{32064, 4096}, c{CompLMHead, -1, KindEmbed, ""}},
		{"language_model.model.norm.weight", []int64{4096}, c{CompLLM, -1, KindNorm, ""}},
		{"language_model.model.layers.0.self_attn.q_proj.weight", []int64{4096, 4096}, c{CompLLM, 0, KindAttnQ, ""}},
		{"language_model.model.layers.31.self_attn.k_proj.weight", []int64{4096, 4096}, c{CompLLM, 31, KindAttnK, ""}},
		{"language_model.model.layers.7.self_attn.v_proj.weight", []int64{4096, 4096}, c{CompLLM, 7, KindAttnV, ""}},
		{"language_model.model.layers.7.self_attn.o_proj.weight", []int64{4096, 4096}, c{CompLLM, 7, KindAttnO, ""}},
		{"language_model.model.layers.3.mlp.gate_proj.weight", []int64{11008, 4096}, c{CompLLM, 3, KindFFNGate, ""}},
		{"language_model.model.layers.3.mlp.up_proj.weight", []int64{11008, 4096}, c{CompLLM, 3, KindFFNUp, ""}},
		{"language_model.model.layers.3.mlp.down_proj.weight", []int64{4096, 11008}, c{CompLLM, 3, KindFFNDown, ""}},
		{"language_model.model.layers.3.input_layernorm.weight", []int64{4096}, c{CompLLM, 3, KindNorm, ""}},
		{"language_model.model.layers.3.post_attention_layernorm.weight", []int64{4096}, c{CompLLM, 3, KindNorm, ""}},
		// OpenVLA HF: projector.
		{"projector.fc1.weight", []int64{8704, 2176}, c{CompProjector, -1, KindProjFc1, ""}},
		{"projector.fc1.bias", []int64{8704}, c{CompProjector, -1, KindBias, KindProjFc1}},
		{"projector.fc2.weight", []int64{4096, 8704}, c{CompProjector, -1, KindProjFc2, ""}},
		{"projector.fc3.weight", []int64{4096, 4096}, c{CompProjector, -1, KindProjFc3, ""}},
		// OpenVLA HF: DINOv2 featurizer (timm names).
		{"vision_backbone.featurizer.cls_token", []int64{1, 1, 1024}, c{CompDINOv2, -1, KindToken, ""}},
		{"vision_backbone.featurizer.reg_token", []int64{1, 4, 1024}, c{CompDINOv2, -1, KindToken, ""}},
		{"vision_backbone.featurizer.pos_embed", []int64{1, 256, 1024}, c{CompDINOv2, -1, KindPosEmbed, ""}},
		{"vision_backbone.featurizer.patch_embed.proj.weight", []int64{1024, 3, 14, 14}, c{CompDINOv2, -1, KindPatchEmbed, ""}},
		{"vision_backbone.featurizer.patch_embed.proj.bias", []int64{1024}, c{CompDINOv2, -1, KindBias, KindPatchEmbed}},
		{"vision_backbone.featurizer.blocks.0.norm1.weight", []int64{1024}, c{CompDINOv2, 0, KindNorm, ""}},
		{"vision_backbone.featurizer.blocks.0.norm1.bias", []int64{1024}, c{CompDINOv2, 0, KindBias, KindNorm}},
		{"vision_backbone.featurizer.blocks.23.attn.qkv.weight", []int64{3072, 1024}, c{CompDINOv2, 23, KindAttnQKV, ""}},
		{"vision_backbone.featurizer.blocks.23.attn.qkv.bias", []int64{3072}, c{CompDINOv2, 23, KindBias, KindAttnQKV}},
		{"vision_backbone.featurizer.blocks.23.attn.proj.weight", []int64{1024, 1024}, c{CompDINOv2, 23, KindAttnO, ""}},
		{"vision_backbone.featurizer.blocks.23.attn.proj.bias", []int64{1024}, c{CompDINOv2, 23, KindBias, KindAttnO}},
		{"vision_backbone.featurizer.blocks.5.ls1.scale_factor", []int64{1024}, c{CompDINOv2, 5, KindLayerScale, KindAttnO}},
		{"vision_backbone.featurizer.blocks.5.ls2.scale_factor", []int64{1024}, c{CompDINOv2, 5, KindLayerScale, KindFFNFc2}},
		{"vision_backbone.featurizer.blocks.5.mlp.fc1.weight", []int64{4096, 1024}, c{CompDINOv2, 5, KindFFNFc1, ""}},
		{"vision_backbone.featurizer.blocks.5.mlp.fc1.bias", []int64{4096}, c{CompDINOv2, 5, KindBias, KindFFNFc1}},
		{"vision_backbone.featurizer.blocks.5.mlp.fc2.weight", []int64{1024, 4096}, c{CompDINOv2, 5, KindFFNFc2, ""}},
		{"vision_backbone.featurizer.norm.weight", []int64{1024}, c{CompDINOv2, -1, KindNorm, ""}},
		// OpenVLA HF: SigLIP fused featurizer (timm names), with its unused pooling head.
		{"vision_backbone.fused_featurizer.blocks.26.attn.qkv.weight", []int64{3456, 1152}, c{CompSigLIP, 26, KindAttnQKV, ""}},
		{"vision_backbone.fused_featurizer.blocks.26.mlp.fc1.weight", []int64{4304, 1152}, c{CompSigLIP, 26, KindFFNFc1, ""}},
		{"vision_backbone.fused_featurizer.blocks.26.norm2.weight", []int64{1152}, c{CompSigLIP, 26, KindNorm, ""}},
		{"vision_backbone.fused_featurizer.attn_pool.latent", []int64{1, 1, 1152}, c{CompSigLIP, -1, KindAttnPool, ""}},
		{"vision_backbone.fused_featurizer.attn_pool.q.weight", []int64{1152, 1152}, c{CompSigLIP, -1, KindAttnPool, ""}},
		{"vision_backbone.fused_featurizer.attn_pool.mlp.fc1.weight", []int64{4304, 1152}, c{CompSigLIP, -1, KindAttnPool, ""}},
		// Prismatic base names.
		{"model.llm_backbone.llm.model.layers.2.self_attn.q_proj.weight", []int64{4096, 4096}, c{CompLLM, 2, KindAttnQ, ""}},
		{"model.llm_backbone.llm.lm_head.weight", []int64{32000, 4096}, c{CompLMHead, -1, KindEmbed, ""}},
		{"model.projector.projector.0.weight", []int64{8704, 2176}, c{CompProjector, -1, KindProjFc1, ""}},
		{"model.projector.projector.4.bias", []int64{4096}, c{CompProjector, -1, KindBias, KindProjFc3}},
		{"vision_backbone.featurizer.blocks.5.ls1.gamma", []int64{1024}, c{CompDINOv2, 5, KindLayerScale, KindAttnO}},
		// π0.5, openpi names.
		{"paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight", []int64{257152, 2048}, c{CompEmbed, -1, KindEmbed, ""}},
		{"paligemma_with_expert.paligemma.lm_head.weight", []int64{257152, 2048}, c{CompLMHead, -1, KindEmbed, ""}},
		{"paligemma_with_expert.paligemma.model.language_model.layers.17.self_attn.k_proj.weight", []int64{256, 2048}, c{CompLLM, 17, KindAttnK, ""}},
		{"paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.gate_proj.weight", []int64{16384, 2048}, c{CompLLM, 0, KindFFNGate, ""}},
		{"paligemma_with_expert.paligemma.model.language_model.norm.weight", []int64{2048}, c{CompLLM, -1, KindNorm, ""}},
		{"paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight", []int64{2048, 1152}, c{CompProjector, -1, KindProjLinear, ""}},
		{"paligemma_with_expert.paligemma.model.multi_modal_projector.linear.bias", []int64{2048}, c{CompProjector, -1, KindBias, KindProjLinear}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight", []int64{1152, 3, 14, 14}, c{CompSigLIP, -1, KindPatchEmbed, ""}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.bias", []int64{1152}, c{CompSigLIP, -1, KindBias, KindPatchEmbed}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.position_embedding.weight", []int64{256, 1152}, c{CompSigLIP, -1, KindPosEmbed, ""}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.26.self_attn.q_proj.weight", []int64{1152, 1152}, c{CompSigLIP, 26, KindAttnQ, ""}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.26.self_attn.out_proj.weight", []int64{1152, 1152}, c{CompSigLIP, 26, KindAttnO, ""}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.26.self_attn.v_proj.bias", []int64{1152}, c{CompSigLIP, 26, KindBias, KindAttnV}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.1.mlp.fc2.weight", []int64{1152, 4304}, c{CompSigLIP, 1, KindFFNFc2, ""}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.1.layer_norm1.weight", []int64{1152}, c{CompSigLIP, 1, KindNorm, ""}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.1.layer_norm2.bias", []int64{1152}, c{CompSigLIP, 1, KindBias, KindNorm}},
		{"paligemma_with_expert.paligemma.model.vision_tower.vision_model.post_layernorm.weight", []int64{1152}, c{CompSigLIP, -1, KindNorm, ""}},
		// π0.5 action expert (adaRMS: the norms' "dense" modulation layers are norms).
		{"paligemma_with_expert.gemma_expert.model.layers.4.self_attn.q_proj.weight", []int64{2048, 1024}, c{CompActionExpert, 4, KindAttnQ, ""}},
		{"paligemma_with_expert.gemma_expert.model.layers.4.mlp.down_proj.weight", []int64{1024, 4096}, c{CompActionExpert, 4, KindFFNDown, ""}},
		{"paligemma_with_expert.gemma_expert.model.layers.4.input_layernorm.dense.weight", []int64{3072, 1024}, c{CompActionExpert, 4, KindNorm, ""}},
		{"paligemma_with_expert.gemma_expert.model.layers.4.post_attention_layernorm.dense.bias", []int64{3072}, c{CompActionExpert, 4, KindBias, KindNorm}},
		{"paligemma_with_expert.gemma_expert.model.norm.dense.weight", []int64{3072, 1024}, c{CompActionExpert, -1, KindNorm, ""}},
		// π0.5 action heads.
		{"action_in_proj.weight", []int64{1024, 32}, c{CompActionHead, -1, KindLinear, ""}},
		{"action_out_proj.bias", []int64{32}, c{CompActionHead, -1, KindBias, KindLinear}},
		{"time_mlp_in.weight", []int64{1024, 1024}, c{CompActionHead, -1, KindLinear, ""}},
		{"time_mlp_out.weight", []int64{1024, 1024}, c{CompActionHead, -1, KindLinear, ""}},
		{"state_proj.weight", []int64{1024, 32}, c{CompActionHead, -1, KindLinear, ""}},
		// LeRobot: the same under a leading "model.".
		{"model.paligemma_with_expert.paligemma.model.language_model.layers.2.self_attn.o_proj.weight", []int64{2048, 2048}, c{CompLLM, 2, KindAttnO, ""}},
		{"model.paligemma_with_expert.gemma_expert.model.layers.0.mlp.up_proj.weight", []int64{4096, 1024}, c{CompActionExpert, 0, KindFFNUp, ""}},
		{"model.action_in_proj.weight", []int64{1024, 32}, c{CompActionHead, -1, KindLinear, ""}},
		// PaliGemma hub legacy and transformers ≥ 4.52 names.
		{"language_model.model.layers.5.self_attn.q_proj.weight", []int64{2048, 2048}, c{CompLLM, 5, KindAttnQ, ""}},
		{"language_model.model.embed_tokens.weight", []int64{257216, 2048}, c{CompEmbed, -1, KindEmbed, ""}},
		{"vision_tower.vision_model.encoder.layers.3.self_attn.k_proj.weight", []int64{1152, 1152}, c{CompSigLIP, 3, KindAttnK, ""}},
		{"multi_modal_projector.linear.weight", []int64{2048, 1152}, c{CompProjector, -1, KindProjLinear, ""}},
		{"model.language_model.layers.5.mlp.down_proj.weight", []int64{2048, 16384}, c{CompLLM, 5, KindFFNDown, ""}},
		{"model.vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight", []int64{4304, 1152}, c{CompSigLIP, 3, KindFFNFc1, ""}},
		{"lm_head.weight", []int64{257216, 2048}, c{CompLMHead, -1, KindEmbed, ""}},
		// TinyLlama (plain HF Llama names).
		{"model.embed_tokens.weight", []int64{32000, 2048}, c{CompEmbed, -1, KindEmbed, ""}},
		{"model.layers.21.self_attn.k_proj.weight", []int64{256, 2048}, c{CompLLM, 21, KindAttnK, ""}},
		{"model.layers.21.mlp.up_proj.weight", []int64{5632, 2048}, c{CompLLM, 21, KindFFNUp, ""}},
		{"model.norm.weight", []int64{2048}, c{CompLLM, -1, KindNorm, ""}},
		// Unknown: never an error.
		{"decoder.blocks.x.weird", []int64{3}, c{CompOther, -1, KindOther, ""}},
		{"weight", []int64{3}, c{CompOther, -1, KindOther, ""}},
		{"", nil, c{CompOther, -1, KindOther, ""}},
		{"...", nil, c{CompOther, -1, KindOther, ""}},
		{"step", nil, c{CompOther, -1, KindOther, ""}},
		// A vocabulary matrix must be 2-D.
		{"model.embed_tokens.weight", []int64{32000}, c{CompEmbed, -1, KindOther, ""}},
	}
	for _, tc := range cases {
		t.Run(tc.name+fmt.Sprint(tc.shape), func(t *testing.T) {
			if got := Classify(tc.name, tc.shape); got != tc.want {
				t.Errorf("Classify(%q, %v) = %+v, want %+v", tc.name, tc.shape, got, tc.want)
			}
		})
	}
}

// Every tensor of the real fixture gets a component other than "other".
func TestClassifyPi05Fixture(t *testing.T) {
	base, vla := loadPi05(t)
	for _, side := range [][]Named{base, vla} {
		for _, tn := range side {
			got := Classify(tn.Name, tn.Shape)
			if got.Component == CompOther || got.Kind == KindOther {
				t.Errorf("Classify(%q) = %+v: fixture tensors are all recognised", tn.Name, got)
			}
		}
	}
}

// FuzzClassify: any name and shape give a class with a known component, never a
// panic.
func FuzzClassify(f *testing.F) {
	f.Add("paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.dense.bias", int64(192))
	f.Add("vision_backbone.featurizer.blocks.0.ls1.gamma", int64(1024))
	f.Add("model.projector.projector.4.weight", int64(4096))
	f.Add(".ls1.", int64(0))
	f.Add("model.", int64(-1))
	components := map[string]bool{CompLLM: true, CompDINOv2: true, CompSigLIP: true, CompProjector: true,
		CompActionExpert: true, CompActionHead: true, CompEmbed: true, CompLMHead: true, CompOther: true}
	f.Fuzz(func(t *testing.T, name string, dim int64) {
		c := Classify(name, []int64{dim, dim})
		if !components[c.Component] || c.Kind == "" || c.Layer < -1 {
			t.Errorf("Classify(%q) = %+v", name, c)
		}
	})
}
