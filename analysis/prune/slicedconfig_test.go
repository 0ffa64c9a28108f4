package prune

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestSlicedConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), ConfigFile) // where the config was read from, for messages
	orig := `{"model_type": "paligemma", "text_config": {"intermediate_size": 16384, "num_attention_heads": 8},
		"vision_config": {"intermediate_size": 4304}, "custom": [1, 2]}`
	m := &Mask{Recipe: Recipe{Name: "r"}, Params: Params{Before: 10, After: 7}, Widths: map[string]*Widths{
		"llm":           {IntermediateSize: []int{12000, 12000}, Heads: []int{6, 8}, KVHeads: []int{1, 1}, HeadDim: 256},
		"vision.siglip": {IntermediateSize: []int{4000, 0, 3000}},
	}}
	data, err := slicedConfigOf([]byte(orig), path, m)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ModelType  string `json:"model_type"`
		Custom     []int  `json:"custom"`
		TextConfig struct {
			IntermediateSize int `json:"intermediate_size"`
			Heads            int `json:"num_attention_heads"`
		} `json:"text_config"`
		VisionConfig struct {
			IntermediateSize int `json:"intermediate_size"`
		} `json:"vision_config"`
		Sliced struct {
			Layers map[string]struct {
				Section          *string `json:"config_section"`
				IntermediateSize []int   `json:"intermediate_size"`
				Heads            []int   `json:"num_attention_heads"`
			} `json:"layers"`
		} `json:"deltascope_sliced"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	// Uniform LLM FFN widths rewrite the section; heads never do; SigLIP's
	// per-layer widths differ (one layer emptied), so its field stays.
	if got.ModelType != "paligemma" || len(got.Custom) != 2 || got.TextConfig.IntermediateSize != 12000 || got.TextConfig.Heads != 8 || got.VisionConfig.IntermediateSize != 4304 {
		t.Errorf("config fields: %+v", got)
	}
	llm, sig := got.Sliced.Layers["llm"], got.Sliced.Layers["vision.siglip"]
	if llm.Section == nil || *llm.Section != "text_config" || len(llm.Heads) != 2 || llm.Heads[0] != 6 {
		t.Errorf("llm entry %+v", llm)
	}
	if sig.Section == nil || *sig.Section != "vision_config" || len(sig.IntermediateSize) != 3 || sig.IntermediateSize[1] != 0 {
		t.Errorf("siglip entry %+v", sig)
	}

	if _, err := slicedConfigOf([]byte(`[1, 2]`), path, m); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("a config that is not an object: %v", err)
	}
}
