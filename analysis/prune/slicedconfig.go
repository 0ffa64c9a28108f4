package prune

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// ConfigFile is the model config a sliced export rewrites (see SlicedConfigKey).
const ConfigFile = "config.json"

// SlicedConfigKey is the object a sliced export adds to the VLA's config.json
// to say what its tensors are. Its fields:
//
//	"widths_file", "recipe_file"  the export's WidthsFile and RecipeFile (at the export's top folder)
//	"params_before", "params_after"
//	"layers": {COMPONENT: {"config_section", "intermediate_size": [per layer],
//	          "num_attention_heads": [...], "num_key_value_heads": [...], "head_dim"}}
//	"loader"                       what can build the model from it
//
// A width of 0 is a layer that lost every FFN channel (or head): its tensors
// are stored with a zero-width dimension. No stock Transformers class of these
// models takes per-layer widths, so the per-layer lists live here; where a
// component's section of the config is known ("text_config" or the top level
// for the language model, "vision_config" for PaliGemma's SigLIP) and every
// layer of it keeps the same FFN width, that section's intermediate_size is
// set to it as well. Head counts are never rewritten in place: a section's
// head_dim may be derived from them.
const SlicedConfigKey = "deltascope_sliced"

// slicedLoader is the "loader" text of SlicedConfigKey.
const slicedLoader = "Per-layer widths differ from the uniform fields of this config, so from_pretrained cannot build this model as is. " +
	"Build each layer with the widths under layers.<component> (the paper authors' eval_multi_module_prune.py builds Llama " +
	"layers from a per-layer FFN width list the same way) and load the weights, or use the masked export, which loads unchanged."

// configSections says which object of a config describes a component.
var configSections = map[string][]string{
	arch.CompLLM:    {"text_config", ""},
	arch.CompSigLIP: {"vision_config"},
}

// slicedConfigOf is a config (data, read from path) rewritten for a sliced
// export of m.
func slicedConfigOf(data []byte, path string, m *Mask) ([]byte, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil || cfg == nil {
		return nil, tensor.Errorf(path, "is not a JSON object (%v); a sliced export rewrites it to say each layer's width", err)
	}
	layers := map[string]any{}
	for _, comp := range slices.Sorted(maps.Keys(m.Widths)) {
		w := m.Widths[comp]
		entry := map[string]any{}
		if w.IntermediateSize != nil {
			entry["intermediate_size"] = w.IntermediateSize
		}
		if w.Heads != nil {
			entry["num_attention_heads"], entry["num_key_value_heads"], entry["head_dim"] = w.Heads, w.KVHeads, w.HeadDim
		}
		if section, ok := findSection(cfg, comp); ok {
			entry["config_section"] = section
			if uniform(w.IntermediateSize) {
				if err := setField(cfg, section, "intermediate_size", w.IntermediateSize[0]); err != nil {
					return nil, tensor.Errorf(path, "%v", err)
				}
			}
		}
		layers[comp] = entry
	}
	block, err := json.Marshal(map[string]any{
		"widths_file": WidthsFile, "recipe_file": RecipeFile, "recipe": m.Recipe.Name,
		"params_before": m.Params.Before, "params_after": m.Params.After,
		"layers": layers, "loader": slicedLoader,
	})
	if err != nil {
		return nil, err
	}
	cfg[SlicedConfigKey] = block
	var b bytes.Buffer
	if err := writeIndented(&b, cfg); err != nil {
		return nil, tensor.Errorf(path, "%v", err)
	}
	return b.Bytes(), nil
}

// findSection returns the config object of a component: a nested object's
// key, or "" for the top level, when it has an intermediate_size.
func findSection(cfg map[string]json.RawMessage, comp string) (string, bool) {
	for _, key := range configSections[comp] {
		obj := cfg
		if key != "" {
			if err := json.Unmarshal(cfg[key], &obj); err != nil || obj == nil {
				continue
			}
		}
		if _, ok := obj["intermediate_size"]; ok {
			return key, true
		}
	}
	return "", false
}

func setField(cfg map[string]json.RawMessage, section, field string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if section == "" {
		cfg[field] = raw
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(cfg[section], &obj); err != nil {
		return err
	}
	obj[field] = raw
	if cfg[section], err = json.Marshal(obj); err != nil {
		return err
	}
	return nil
}

// uniform reports whether every layer has the same width. Layers a component
// lacks read 0 in its list, so a component with gaps is not uniform.
func uniform(ws []int) bool {
	if len(ws) == 0 {
		return false
	}
	for _, w := range ws {
		if w != ws[0] {
			return false
		}
	}
	return true
}
