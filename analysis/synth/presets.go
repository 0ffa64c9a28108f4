package synth

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// presetBuilders maps each preset to the function that lays it out at a scale.
var presetBuilders = map[string]func(scale float64) (*model, error){
	"openvla-7b": openVLA,
	"pi05":       pi05,
	"tinyllama":  tinyLlamaAs(tensor.BF16, tensor.BF16),
	// The same model with F32 sides, for timing the engine on each dtype pair
	// real checkpoints come in (an F32 base fine-tuned to BF16, or F32 on both).
	"tinyllama-f32-bf16": tinyLlamaAs(tensor.F32, tensor.BF16),
	"tinyllama-f32":      tinyLlamaAs(tensor.F32, tensor.F32),
}

// tinyLlamaAs is TinyLlama-1.1B (Llama, GQA 32/4 heads of 64) on both sides,
// stored as baseDT and vlaDT (the real one is BF16 on both), one
// model.safetensors each. Widths scale through head_dim so that the head
// counts, and with them the unit structure, stay real.
func tinyLlamaAs(baseDT, vlaDT tensor.DType) func(scale float64) (*model, error) {
	return func(scale float64) (*model, error) { return tinyLlama(scale, baseDT, vlaDT) }
}

func tinyLlama(scale float64, baseDT, vlaDT tensor.DType) (*model, error) {
	hd := scaled(64, scale, 2)
	d := decoder{layers: 22, heads: 32, kvHeads: 4, headDim: hd, hidden: 32 * hd, ffn: scaled(5632, scale, 8)}
	vocab := scaled(32000, scale, 8)
	b := &builder{}
	addDecoder(b, sides{base: "model.", vla: "model.", baseGroup: "model", comp: compLLM,
		baseMat: baseDT, baseVec: baseDT, vlaMat: vlaDT, vlaVec: vlaDT,
		embedRowsBase: vocab, embedRowsVLA: vocab,
		headBaseName: "lm_head.weight", headVLAName: "lm_head.weight", headRowsBase: vocab, headRowsVLA: vocab}, d)
	cfg := llamaConfig(d, vocab, 1e-5, 2048)
	cfg["_name_or_path"] = "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T"
	baseCfg := maps.Clone(cfg)
	baseCfg["torch_dtype"], cfg["torch_dtype"] = torchDType(baseDT), torchDType(vlaDT)
	m := &model{preset: "tinyllama", specs: b.specs,
		baseFiles: []fileSpec{{path: "base/model.safetensors", specs: specsOf(b.specs, "model")}},
		vlaFiles:  []fileSpec{{path: "vla/model.safetensors", specs: append([]*spec(nil), b.specs...)}},
		baseSpecs: []string{"base/model.safetensors"},
		vlaSpecs:  []string{"vla/model.safetensors"},
		extra:     map[string][]byte{},
	}
	sortForFile(m.baseFiles[0].specs, baseName, baseDType)
	sortForFile(m.vlaFiles[0].specs, vlaName, vlaDType)
	if err := m.addJSON("base/config.json", baseCfg); err != nil {
		return nil, err
	}
	return m, m.addJSON("vla/config.json", cfg)
}

// torchDType is the config.json name of a dtype the generator writes.
func torchDType(d tensor.DType) string {
	if d == tensor.F32 {
		return "float32"
	}
	return "bfloat16"
}

func llamaConfig(d decoder, vocab int64, eps float64, ctx int) map[string]any {
	return map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             d.hidden,
		"intermediate_size":       d.ffn,
		"num_hidden_layers":       d.layers,
		"num_attention_heads":     d.heads,
		"num_key_value_heads":     d.kvHeads,
		"head_dim":                d.headDim,
		"vocab_size":              vocab,
		"rms_norm_eps":            eps,
		"max_position_embeddings": ctx,
		"hidden_act":              "silu",
		"tie_word_embeddings":     false,
		"torch_dtype":             "bfloat16",
	}
}

// openVLA is HF openvla/openvla-7b (VLA: 3 BF16 shards + index + config) and its
// Prismatic base prism-dinosiglip-224px+7b, flattened from the torch pickle
// {"model": {"projector", "llm_backbone"}} into one file, with the two vision
// encoders as stock timm files attached by SRC prefix.
func openVLA(scale float64) (*model, error) {
	dinoHD, sigHD, llmHD := scaled(64, scale, 2), scaled(72, scale, 2), scaled(128, scale, 2)
	dino := vit{layers: 24, heads: 16, hdim: dinoHD, width: 16 * dinoHD, ffn: 4 * 16 * dinoHD,
		positions: 256, patch: 14, channels: 3, cls: true, registers: 4, layerScale: true, frozenTail: true}
	sig := vit{layers: 27, heads: 16, hdim: sigHD, width: 16 * sigHD, ffn: scaled(4304, scale, 8),
		positions: 256, patch: 14, channels: 3, attnPool: true, frozenTail: true}
	llm := decoder{layers: 32, heads: 32, kvHeads: 32, headDim: llmHD, hidden: 32 * llmHD, ffn: scaled(11008, scale, 8)}
	// Llama-2's 32,000 tokens plus Prismatic's <PAD>, padded to a multiple of 64
	// (its llama2 backbone's resize_token_embeddings(..., pad_to_multiple_of=64)):
	// the base already has the 32,064 rows (the authors' orig_model_weights.txt
	// lists llm_backbone.llm.model.embed_tokens.weight (32064, 4096)), and OpenVLA
	// keeps them, so embed_tokens and lm_head pair with equal shapes. The pad rows
	// are ordinary base rows, fine-tuned like the others.
	vocab := scaled(32000, scale, 8) + 64
	fused := dino.width + sig.width
	bf := tensor.BF16
	common := sides{baseMat: bf, baseVec: bf, vlaMat: bf, vlaVec: bf, layerScaleBase: "gamma", layerScaleVLA: "scale_factor",
		frozenPatchEmbed: true}

	b := &builder{}
	sd := common
	sd.base, sd.vla, sd.baseGroup, sd.comp = "", "vision_backbone.featurizer.", "dinov2", compDINO
	addTimmViT(b, sd, dino)
	sd.vla, sd.baseGroup, sd.comp, sd.frozenUnused = "vision_backbone.fused_featurizer.", "siglip", compSigLIP, true
	addTimmViT(b, sd, sig)

	sd = common
	sd.baseGroup, sd.comp = "prismatic", compProjector
	rel := divergence(compProjector, modFFN, -1, 0)
	linear(b, sd, "model.projector.projector.0", "projector.fc1", 4*fused, fused, rel, "proj.1", "")
	linear(b, sd, "model.projector.projector.2", "projector.fc2", llm.hidden, 4*fused, rel, "proj.2", "proj.1")
	linear(b, sd, "model.projector.projector.4", "projector.fc3", llm.hidden, llm.hidden, rel, "proj.3", "proj.2")

	sd.base, sd.vla, sd.comp = "model.llm_backbone.llm.model.", "language_model.model.", compLLM
	sd.embedRowsBase, sd.embedRowsVLA = vocab, vocab
	sd.headBaseName, sd.headVLAName = "model.llm_backbone.llm.lm_head.weight", "language_model.lm_head.weight"
	sd.headRowsBase, sd.headRowsVLA = vocab, vocab
	addDecoder(b, sd, llm)

	m := &model{preset: "openvla-7b", specs: b.specs, extra: map[string][]byte{},
		baseSpecs: []string{"base/prismatic.safetensors",
			"vision_backbone.featurizer.=base/dinov2.safetensors",
			"vision_backbone.fused_featurizer.=base/siglip.safetensors"},
		vlaSpecs: []string{"vla"},
	}
	for _, f := range []struct{ group, path, prefix string }{
		{"prismatic", "base/prismatic.safetensors", ""},
		{"dinov2", "base/dinov2.safetensors", "vision_backbone.featurizer."},
		{"siglip", "base/siglip.safetensors", "vision_backbone.fused_featurizer."},
	} {
		fs := fileSpec{path: f.path, prefix: f.prefix, specs: specsOf(b.specs, f.group)}
		sortForFile(fs.specs, baseName, baseDType)
		m.baseFiles = append(m.baseFiles, fs)
	}
	var names []string
	m.vlaFiles, names = shard(append([]*spec(nil), b.specs...), 3, "vla", true)
	if err := m.addIndex("vla/model.safetensors.index.json", m.vlaFiles, names, true); err != nil {
		return nil, err
	}

	text := llamaConfig(llm, vocab, 1e-6, 2048)
	text["pad_token_id"] = vocab - 64 // <PAD>, right after Llama's tokens: 32000 at scale 1
	vision := []map[string]any{
		vitConfig("vision_backbone.featurizer.", "vit_large_patch14_reg4_dinov2.lvd142m", dino),
		vitConfig("vision_backbone.fused_featurizer.", "vit_so400m_patch14_siglip_224", sig),
	}
	vlaCfg := map[string]any{
		"architectures":             []string{"OpenVLAForActionPrediction"},
		"model_type":                "openvla",
		"vision_backbone_id":        "dinosiglip-vit-so-224px",
		"llm_backbone_id":           "llama2-7b-pure",
		"arch_specifier":            "no-align+fused-gelu-mlp",
		"use_fused_vision_backbone": true,
		"image_resize_strategy":     "resize-naive",
		"timm_model_ids":            []string{"vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"},
		"image_sizes":               []int{224, 224},
		"n_action_bins":             256,
		"pad_to_multiple_of":        64,
		"text_config":               text,
		"vision_backbones":          vision,
		"torch_dtype":               "bfloat16",
		"deltascope_synthetic":      map[string]any{"preset": "openvla-7b", "scale": scale},
	}
	baseText := llamaConfig(llm, vocab, 1e-6, 2048)
	baseText["pad_token_id"] = vocab - 64
	baseCfg := map[string]any{
		"model": map[string]any{
			"model_id":           "prism-dinosiglip-224px+7b",
			"vision_backbone_id": "dinosiglip-vit-so-224px",
			"llm_backbone_id":    "llama2-7b-pure",
			"arch_specifier":     "no-align+fused-gelu-mlp",
		},
		"text_config":          baseText,
		"vision_backbones":     vision,
		"deltascope_synthetic": map[string]any{"preset": "openvla-7b", "scale": scale},
	}
	if err := m.addJSON("vla/config.json", vlaCfg); err != nil {
		return nil, err
	}
	return m, m.addJSON("base/config.json", baseCfg)
}

func vitConfig(prefix, timmID string, v vit) map[string]any {
	return map[string]any{
		"prefix": prefix, "timm_model_id": timmID, "hidden_size": v.width, "num_attention_heads": v.heads,
		"head_dim": v.hdim, "intermediate_size": v.ffn, "num_hidden_layers": v.layers, "patch_size": v.patch,
		"image_size": 224,
	}
}

// pi05 is π0.5 in openpi's PyTorch names (one model.safetensors, matrices BF16
// and vectors F32, like testdata/fixtures/pi05/vla) and its PaliGemma base in
// the hub's legacy names (F32, sharded with an index, lm_head tied and not stored).
// The VLA's tensor list is the authors' pi05_libero one (812 tensors,
// 3,616,757,520 parameters): PaliGemma's lm_head stored once, tied, with no
// separate embed_tokens, and the action expert's own lm_head [257152, 1024].
func pi05(scale float64) (*model, error) {
	hd := scaled(256, scale, 2)
	sigHD := scaled(72, scale, 2)
	sig := vit{layers: 27, heads: 16, hdim: sigHD, width: 16 * sigHD, ffn: scaled(4304, scale, 8),
		positions: 256, patch: 14, channels: 3}
	gemma := decoder{layers: 18, heads: 8, kvHeads: 1, headDim: hd, hidden: 8 * hd, ffn: scaled(16384, scale, 8)}
	expert := decoder{layers: 18, heads: 8, kvHeads: 1, headDim: hd, hidden: 4 * hd, ffn: scaled(4096, scale, 8),
		adaptiveNorms: true, skipEmbed: true}
	vocabVLA := scaled(257152, scale, 8)
	vocabBase := vocabVLA + 64 // the hub PaliGemma keeps 64 more (unused) token rows
	const actionDim = 32

	common := sides{baseMat: tensor.F32, baseVec: tensor.F32, vlaMat: tensor.BF16, vlaVec: tensor.F32, baseGroup: "paligemma"}
	b := &builder{}
	sd := common
	sd.base, sd.vla, sd.comp, sd.frozenPatchEmbed = "vision_tower.vision_model.", "paligemma_with_expert.paligemma.model.vision_tower.vision_model.", compSigLIP, true
	addHFSigLIP(b, sd, sig)
	sd = common
	linear(b, sd, "multi_modal_projector.linear", "paligemma_with_expert.paligemma.model.multi_modal_projector.linear",
		gemma.hidden, sig.width, divergence(compProjector, modFFN, -1, 0), "proj.1", "")
	sd.base, sd.vla, sd.comp = "language_model.model.", "paligemma_with_expert.paligemma.model.language_model.", compLLM
	sd.embedRowsBase, sd.embedRowsVLA = vocabBase, vocabVLA
	sd.tiedHeadInVLA = "paligemma_with_expert.paligemma.lm_head.weight"
	addDecoder(b, sd, gemma)

	sd = common
	sd.noBase, sd.comp, sd.vla = true, compNone, "paligemma_with_expert.gemma_expert.model."
	addDecoder(b, sd, expert)
	// The expert's lm_head: never used for actions, but stored in the checkpoint.
	b.add(&spec{vla: "paligemma_with_expert.gemma_expert.lm_head.weight", vlaShape: []int64{vocabVLA, expert.hidden},
		vlaDType: tensor.BF16, init: initMatrix})
	linear(b, sd, "", "action_in_proj", expert.hidden, actionDim, 0, "", "")
	linear(b, sd, "", "action_out_proj", actionDim, expert.hidden, 0, "", "")
	linear(b, sd, "", "time_mlp_in", expert.hidden, expert.hidden, 0, "", "")
	linear(b, sd, "", "time_mlp_out", expert.hidden, expert.hidden, 0, "", "")

	m := &model{preset: "pi05", specs: b.specs, extra: map[string][]byte{},
		baseSpecs: []string{"base"}, vlaSpecs: []string{"vla/model.safetensors"}}
	var names []string
	m.baseFiles, names = shard(specsOf(b.specs, "paligemma"), 3, "base", false)
	if err := m.addIndex("base/model.safetensors.index.json", m.baseFiles, names, false); err != nil {
		return nil, err
	}
	m.vlaFiles = []fileSpec{{path: "vla/model.safetensors", specs: append([]*spec(nil), b.specs...)}}
	sortForFile(m.vlaFiles[0].specs, vlaName, vlaDType)

	textCfg := func(d decoder, vocab int64) map[string]any {
		return map[string]any{
			"model_type": "gemma", "hidden_size": d.hidden, "intermediate_size": d.ffn,
			"num_hidden_layers": d.layers, "num_attention_heads": d.heads, "num_key_value_heads": d.kvHeads,
			"head_dim": d.headDim, "vocab_size": vocab, "hidden_activation": "gelu_pytorch_tanh",
		}
	}
	visionCfg := map[string]any{
		"model_type": "siglip_vision_model", "hidden_size": sig.width, "intermediate_size": sig.ffn,
		"num_hidden_layers": sig.layers, "num_attention_heads": sig.heads, "head_dim": sig.hdim,
		"patch_size": sig.patch, "image_size": 224, "projection_dim": gemma.hidden,
	}
	baseCfg := map[string]any{
		"architectures": []string{"PaliGemmaForConditionalGeneration"}, "model_type": "paligemma",
		"hidden_size": gemma.hidden, "projection_dim": gemma.hidden, "vocab_size": vocabBase,
		"image_token_index": vocabVLA, "text_config": textCfg(gemma, vocabBase), "vision_config": visionCfg,
		"torch_dtype":          "float32",
		"deltascope_synthetic": map[string]any{"preset": "pi05", "scale": scale},
	}
	vlaCfg := map[string]any{
		"type": "pi05", "paligemma_variant": "gemma_2b", "action_expert_variant": "gemma_300m",
		"action_dim": actionDim, "text_config": textCfg(gemma, vocabVLA), "vision_config": visionCfg,
		"action_expert_config": textCfg(expert, 0),
		"deltascope_synthetic": map[string]any{"preset": "pi05", "scale": scale},
	}
	if err := m.addJSON("base/config.json", baseCfg); err != nil {
		return nil, err
	}
	return m, m.addJSON("vla/config.json", vlaCfg)
}

// specsOf returns, in state-dict order, the specs stored in the given base file group.
func specsOf(specs []*spec, baseGroup string) []*spec {
	var out []*spec
	for _, s := range specs {
		if s.base != "" && s.baseGroup == baseGroup {
			out = append(out, s)
		}
	}
	return out
}

func (m *model) addJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	m.extra[path] = append(data, '\n')
	return nil
}
