package arch

import "testing"

// deltascope's π0.5 generator names openpi's gemma_300m variant and writes the
// expert's scaled geometry as action_expert_config; the written numbers win,
// so a generated pair's expert is neither re-inferred nor warned about.
func TestGeneratorActionExpertConfig(t *testing.T) {
	cfg := []byte(`{"type": "pi05", "paligemma_variant": "gemma_2b", "action_expert_variant": "gemma_300m",
		"action_expert_config": {"model_type": "gemma", "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 12, "hidden_size": 48},
		"text_config": {"model_type": "gemma", "num_attention_heads": 8, "num_key_value_heads": 1, "head_dim": 12, "hidden_size": 96}}`)
	tensors := []Named{
		{"paligemma_with_expert.gemma_expert.model.layers.0.self_attn.q_proj.weight", []int64{96, 48}},
		{"paligemma_with_expert.gemma_expert.model.layers.0.self_attn.k_proj.weight", []int64{12, 48}},
		{"paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight", []int64{96, 96}},
		{"paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.k_proj.weight", []int64{12, 96}},
	}
	geo, guessed, warns := GeometriesGuessed([][]byte{cfg}, tensors, nil)
	want := Geometry{Heads: 8, KVHeads: 1, HeadDim: 12}
	if geo[CompActionExpert] != want || geo[CompLLM] != want || len(guessed) != 0 || len(warns) != 0 {
		t.Errorf("geometry %v, guessed %v, warnings %q; want %v for the expert and the LLM, nothing guessed or warned", geo, guessed, warns, want)
	}
	// Without it, the variant's stock head_dim 256 does not fit and is replaced.
	geo, _, warns = GeometriesGuessed([][]byte{[]byte(`{"action_expert_variant": "gemma_300m"}`)}, tensors[:2], nil)
	if geo[CompActionExpert] != want || len(warns) != 1 {
		t.Errorf("variant only: geometry %v, warnings %q; want %v inferred with one warning", geo[CompActionExpert], warns, want)
	}
}
