package arch

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// Real config.json contents (trimmed to what matters, plus some noise).
const (
	tinyLlamaConfig = `{"architectures":["LlamaForCausalLM"],"hidden_size":2048,"intermediate_size":5632,
		"model_type":"llama","num_attention_heads":32,"num_hidden_layers":22,"num_key_value_heads":4,
		"rms_norm_eps":1e-05,"vocab_size":32000}`
	llama2Config = `{"architectures":["LlamaForCausalLM"],"hidden_size":4096,"model_type":"llama",
		"num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":32}`
	paligemmaConfig = `{"architectures":["PaliGemmaForConditionalGeneration"],"model_type":"paligemma",
		"projection_dim":2048,"text_config":{"hidden_size":2048,"intermediate_size":16384,"model_type":"gemma",
		"num_attention_heads":8,"num_hidden_layers":18,"num_image_tokens":256,"num_key_value_heads":1,
		"vocab_size":257216},"vision_config":{"hidden_size":1152,"intermediate_size":4304,
		"model_type":"siglip_vision_model","num_attention_heads":16,"num_hidden_layers":27,"patch_size":14}}`
	// OpenVLA's text_config leaves the Llama numbers to LlamaConfig's defaults.
	openvlaConfig = `{"arch_specifier":"no-align+fused-gelu-mlp","model_type":"openvla",
		"llm_backbone_id":"llama2-7b-pure","text_config":{"model_type":"llama","pad_token_id":32000,
		"torch_dtype":"bfloat16","vocab_size":32064},"timm_model_ids":["vit_large_patch14_reg4_dinov2.lvd142m",
		"vit_so400m_patch14_siglip_224"],"timm_override_act_layers":[null,null],"use_fused_vision_backbone":true,
		"vision_backbone_id":"dinosiglip-vit-so-224px","norm_stats":{"bridge":{"action":{"mean":[0.1,0.2]}}}}`
	pi05Config = `{"type":"pi05","paligemma_variant":"gemma_2b","action_expert_variant":"gemma_300m",
		"chunk_size":50,"max_state_dim":32}`
)

func tinyLlamaTensors() []Named {
	var ts []Named
	for l := range 2 {
		p := fmt.Sprintf("model.layers.%d.self_attn.", l)
		ts = append(ts,
			Named{p + "q_proj.weight", []int64{2048, 2048}},
			Named{p + "k_proj.weight", []int64{256, 2048}},
			Named{p + "v_proj.weight", []int64{256, 2048}},
			Named{p + "o_proj.weight", []int64{2048, 2048}})
	}
	return append(ts, Named{"model.embed_tokens.weight", []int64{32000, 2048}})
}

func gemma2BTensors(prefix string) []Named {
	return []Named{
		{prefix + "paligemma.model.language_model.layers.0.self_attn.q_proj.weight", []int64{2048, 2048}},
		{prefix + "paligemma.model.language_model.layers.0.self_attn.k_proj.weight", []int64{256, 2048}},
		{prefix + "gemma_expert.model.layers.0.self_attn.q_proj.weight", []int64{2048, 1024}},
		{prefix + "gemma_expert.model.layers.0.self_attn.k_proj.weight", []int64{256, 1024}},
		{prefix + "paligemma.model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight", []int64{1152, 1152}},
		{prefix + "paligemma.model.vision_tower.vision_model.encoder.layers.0.self_attn.k_proj.weight", []int64{1152, 1152}},
	}
}

func TestGeometries(t *testing.T) {
	_, pi05VLA := loadPi05(t)
	pi05Base, _ := loadPi05(t)
	_, openvlaVLA := splitCases(openvlaCases())
	gemma2B := Geometry{8, 1, 256}
	so400m := Geometry{16, 16, 72}

	cases := []struct {
		name      string
		configs   []string
		tensors   []Named
		overrides map[string]Geometry
		want      map[string]Geometry
		warnings  []string // substrings, one per expected warning, in order
	}{
		{
			name:    "pi05 fixture, no config: Gemma MQA from q/k rows",
			tensors: pi05VLA,
			want: map[string]Geometry{
				CompLLM:          {4, 1, 32}, // q [128,128], k [32,128]
				CompActionExpert: {4, 1, 32}, // q [128,64], k [32,64]
				CompSigLIP:       {1, 1, 48}, // width 48: no known head size
			},
			warnings: []string{"vision.siglip: no config and width 48 not a known encoder; assumed 1 heads × 48"},
		},
		{
			name:     "pi05 fixture base, legacy PaliGemma names",
			tensors:  pi05Base,
			want:     map[string]Geometry{CompLLM: {4, 1, 32}, CompSigLIP: {1, 1, 48}},
			warnings: []string{"vision.siglip: no config"},
		},
		{
			name:    "OpenVLA full-size shapes, no config",
			tensors: openvlaVLA,
			want:    map[string]Geometry{CompLLM: {32, 32, 128}, CompDINOv2: {16, 16, 64}, CompSigLIP: so400m},
		},
		{
			name:    "OpenVLA config",
			configs: []string{openvlaConfig},
			tensors: openvlaVLA,
			want:    map[string]Geometry{CompLLM: {32, 32, 128}, CompDINOv2: {16, 16, 64}, CompSigLIP: so400m},
		},
		{
			name:    "TinyLlama shapes, no config",
			tensors: tinyLlamaTensors(),
			want:    map[string]Geometry{CompLLM: {32, 4, 64}},
		},
		{
			name:    "HF Llama config, no tensors",
			configs: []string{tinyLlamaConfig},
			want:    map[string]Geometry{CompLLM: {32, 4, 64}},
		},
		{
			name:    "Llama-2 config",
			configs: []string{llama2Config},
			want:    map[string]Geometry{CompLLM: {32, 32, 128}},
		},
		{
			name:    "PaliGemma config with text_config and vision_config",
			configs: []string{paligemmaConfig},
			tensors: gemma2BTensors("paligemma_with_expert."),
			want:    map[string]Geometry{CompLLM: gemma2B, CompSigLIP: so400m, CompActionExpert: gemma2B},
		},
		{
			name:    "pi05 shapes, no config",
			tensors: gemma2BTensors("model.paligemma_with_expert."),
			want:    map[string]Geometry{CompLLM: gemma2B, CompSigLIP: so400m, CompActionExpert: gemma2B},
		},
		{
			name:    "pi05 config by variant names",
			configs: []string{pi05Config},
			want:    map[string]Geometry{CompLLM: gemma2B, CompSigLIP: so400m, CompActionExpert: gemma2B},
		},
		{
			name:    "config that does not fit the tensors",
			configs: []string{paligemmaConfig},
			tensors: pi05VLA,
			want: map[string]Geometry{
				CompLLM: {4, 1, 32}, CompActionExpert: {4, 1, 32}, CompSigLIP: {1, 1, 48},
			},
			warnings: []string{
				"llm: config geometry 8 heads × 256 (1 KV) does not fit q rows 128 / k rows 32; inferring from shapes",
				"vision.siglip: config geometry",
				"vision.siglip: no config and width 48",
			},
		},
		{
			name:      "overrides: complete, partial, invalid",
			tensors:   pi05VLA,
			overrides: map[string]Geometry{CompSigLIP: {Heads: 4}, CompLLM: {8, 1, 16}, CompActionExpert: {Heads: -1}},
			want:      map[string]Geometry{CompSigLIP: {4, 4, 12}, CompLLM: {8, 1, 16}},
			warnings: []string{
				"action_expert: heads override",
				"llm: heads override 8 heads × 16 (1 KV) does not fit q rows 128 / k rows 32",
			},
		},
		{
			name:     "unknown component needs the user",
			tensors:  []Named{{"net.layers.0.self_attn.q_proj.weight", []int64{96, 96}}},
			want:     map[string]Geometry{},
			warnings: []string{"other: attention geometry unknown (q rows 96, k rows 96); set heads for component other (--heads other=HEADS[:KV_HEADS])"},
		},
		{
			name: "LLaVA-style names beside a Llama are not Gemma",
			tensors: []Named{
				{"model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight", []int64{1024, 1024}},
				{"model.multi_modal_projector.linear_1.weight", []int64{4096, 1024}},
				{"model.language_model.layers.0.self_attn.q_proj.weight", []int64{4096, 4096}},
				{"model.language_model.layers.0.self_attn.k_proj.weight", []int64{4096, 4096}},
			},
			want: map[string]Geometry{CompLLM: {32, 32, 128}, CompSigLIP: {16, 16, 64}},
		},
		{
			name:     "a fused qkv that is not three blocks",
			tensors:  []Named{{"vision_backbone.featurizer.blocks.0.attn.qkv.weight", []int64{100, 32}}},
			want:     map[string]Geometry{},
			warnings: []string{"vision.dinov2: attention weights of unexpected shape; set heads for component vision.dinov2 (--heads vision.dinov2=HEADS[:KV_HEADS])"},
		},
		{
			name:     "unknown Llama width",
			tensors:  []Named{{"model.layers.0.self_attn.q_proj.weight", []int64{96, 96}}, {"model.layers.0.self_attn.k_proj.weight", []int64{32, 96}}},
			want:     map[string]Geometry{CompLLM: {3, 1, 32}},
			warnings: []string{"llm: no config and width 96 not a known Llama; assumed head_dim 32"},
		},
		{
			name:     "bad config JSON",
			configs:  []string{`{"num_attention_heads": "many"`, `{"model_type":"llama","num_attention_heads":0,"hidden_size":64}`},
			want:     map[string]Geometry{},
			warnings: []string{"config #1: not a valid config.json", "config #2: llm: num_attention_heads 0 out of range"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var configs [][]byte
			for _, c := range tc.configs {
				configs = append(configs, []byte(c))
			}
			got, warns := Geometries(configs, tc.tensors, tc.overrides)
			if !maps.Equal(got, tc.want) {
				t.Errorf("geometries\n got %v\nwant %v", got, tc.want)
			}
			if len(warns) != len(tc.warnings) {
				t.Fatalf("warnings %q, want %d matching %q", warns, len(tc.warnings), tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(warns[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warns[i], w)
				}
			}
		})
	}
}

func TestPickHeadDim(t *testing.T) {
	cases := []struct{ n, want int64 }{
		{1024, 64}, {1152, 64}, {720, 72}, {48, 48}, {1000, 125}, {7, 7}, {0, 0}, {-5, 0},
	}
	for _, tc := range cases {
		if got := pickHeadDim(tc.n, 64, 72); got != tc.want {
			t.Errorf("pickHeadDim(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

// FuzzGeometries: any config bytes give geometries that pass validation, or
// warnings, never a panic.
func FuzzGeometries(f *testing.F) {
	for _, c := range []string{tinyLlamaConfig, llama2Config, paligemmaConfig, openvlaConfig, pi05Config,
		`{"text_config":null,"vision_config":{"model_type":"dinov2","num_attention_heads":3,"hidden_size":7}}`,
		`{"model_type":"gemma","num_attention_heads":8,"num_key_value_heads":3,"head_dim":-1}`,
		`{"timm_model_ids":[null,"vit_giant_patch14_dinov2","x"]}`} {
		f.Add([]byte(c))
	}
	_, vla := loadPi05(f)
	f.Fuzz(func(t *testing.T, config []byte) {
		got, _ := Geometries([][]byte{config}, vla, nil)
		for comp, g := range got {
			if err := g.validate(); err != nil {
				t.Errorf("%s: %v: %v", comp, g, err)
			}
		}
	})
}

// deltascope's generator scales widths but keeps timm ids; its per-backbone
// entries must win over the ids' stock geometry.
func TestGeneratorVisionBackbones(t *testing.T) {
	cfg := []byte(`{"timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
		"vision_backbones": [
			{"prefix": "vision_backbone.featurizer.", "num_attention_heads": 16, "head_dim": 4, "hidden_size": 64},
			{"prefix": "vision_backbone.fused_featurizer.", "num_attention_heads": 16, "head_dim": 4, "hidden_size": 64}]}`)
	tensors := []Named{
		{"vision_backbone.featurizer.blocks.0.attn.qkv.weight", []int64{192, 64}},
		{"vision_backbone.fused_featurizer.blocks.0.attn.qkv.weight", []int64{192, 64}},
	}
	geo, warns := Geometries([][]byte{cfg}, tensors, nil)
	want := Geometry{Heads: 16, KVHeads: 16, HeadDim: 4}
	if geo[CompDINOv2] != want || geo[CompSigLIP] != want {
		t.Errorf("geometry %v, want %v for both encoders (warnings %v)", geo, want, warns)
	}
}
