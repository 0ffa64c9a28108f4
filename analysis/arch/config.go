package arch

import (
	"encoding/json"
	"fmt"
	"strings"
)

// hfConfig is the part of a config.json that matters for attention geometry: HF
// text or vision configs (Llama, Gemma, SigLIP, DINOv2), composite ones
// (PaliGemma, OpenVLA: text_config / vision_config / timm_model_ids) and
// openpi/LeRobot π0.5 configs (paligemma_variant, action_expert_variant).
type hfConfig struct {
	ModelType        string          `json:"model_type"`
	Heads            *int            `json:"num_attention_heads"`
	KVHeads          *int            `json:"num_key_value_heads"`
	HeadDim          *int            `json:"head_dim"`
	Hidden           *int            `json:"hidden_size"`
	TextConfig       json.RawMessage `json:"text_config"`
	VisionConfig     json.RawMessage `json:"vision_config"`
	TimmModelIDs     []*string       `json:"timm_model_ids"`
	PaliGemmaVariant string          `json:"paligemma_variant"`
	// VisionBackbones is written by deltascope's generator (scaled widths make
	// the timm ids' stock geometry wrong): one config per encoder, by prefix.
	VisionBackbones     []visionBackbone `json:"vision_backbones"`
	ActionExpertVariant string           `json:"action_expert_variant"`
	// ActionExpertConfig is also the generator's: π0.5's expert at its scaled
	// width, which the variant's stock geometry no longer fits.
	ActionExpertConfig json.RawMessage `json:"action_expert_config"`
}

type visionBackbone struct {
	Prefix  string `json:"prefix"`
	Heads   *int   `json:"num_attention_heads"`
	HeadDim *int   `json:"head_dim"`
	Hidden  *int   `json:"hidden_size"`
}

// maxConfigBytes bounds what is parsed: real config.json files are a few kB (OpenVLA's
// with its normalisation statistics, some hundred kB).
const maxConfigBytes = 16 << 20

// maxGeometryValue bounds head counts and head sizes read from a config.
const maxGeometryValue = 1 << 16

// openpiVariants are openpi's Gemma variants (gemma.py get_config), which its and
// LeRobot's π0/π0.5 configs name instead of giving numbers.
var openpiVariants = map[string]Geometry{
	"gemma_2b":        {Heads: 8, KVHeads: 1, HeadDim: 256},
	"gemma_2b_lora":   {Heads: 8, KVHeads: 1, HeadDim: 256},
	"gemma_300m":      {Heads: 8, KVHeads: 1, HeadDim: 256},
	"gemma_300m_lora": {Heads: 8, KVHeads: 1, HeadDim: 256},
}

// siglipSo400m is PaliGemma's (and OpenVLA's fused) vision encoder.
var siglipSo400m = Geometry{Heads: 16, KVHeads: 16, HeadDim: 72}

// configGeometries reads one config.json into geometries per component.
func configGeometries(data []byte, which int) (map[string]Geometry, []string) {
	label := fmt.Sprintf("config #%d", which+1)
	if len(data) > maxConfigBytes {
		return nil, []string{fmt.Sprintf("%s: %d bytes, over the %d-byte limit for a config.json; ignored", label, len(data), maxConfigBytes)}
	}
	var top hfConfig
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, []string{fmt.Sprintf("%s: not a valid config.json: %v; ignored", label, err)}
	}
	out := map[string]Geometry{}
	var warns []string
	put := func(comp string, g Geometry, err error) {
		if err != nil {
			warns = append(warns, fmt.Sprintf("%s: %s: %v; ignored", label, comp, err))
			return
		}
		out[comp] = g
	}
	// section reads a nested config (text_config, vision_config, …) when the
	// file has one; a malformed one is a warning, not a failure.
	section := func(key string, raw json.RawMessage) (hfConfig, bool) {
		var c hfConfig
		if len(raw) == 0 || string(raw) == "null" {
			return c, false
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			warns = append(warns, fmt.Sprintf("%s: %s: %v; ignored", label, key, err))
			return c, false
		}
		return c, true
	}

	// π0/π0.5 (openpi, LeRobot): Gemma variants by name, SigLIP so400m for vision.
	if g, ok := openpiVariants[top.PaliGemmaVariant]; ok {
		out[CompLLM] = g
		out[CompSigLIP] = siglipSo400m
	}
	if g, ok := openpiVariants[top.ActionExpertVariant]; ok {
		out[CompActionExpert] = g
	}
	if expert, ok := section("action_expert_config", top.ActionExpertConfig); ok {
		g, err := expert.geometry()
		put(CompActionExpert, g, err)
	}

	if text, ok := section("text_config", top.TextConfig); ok {
		g, err := text.geometry()
		put(CompLLM, g, err)
	}
	if vision, ok := section("vision_config", top.VisionConfig); ok {
		if comp := visionComponent(vision.ModelType); comp == "" {
			warns = append(warns, fmt.Sprintf("%s: vision_config model_type %q not recognised; ignored", label, vision.ModelType))
		} else {
			g, err := vision.geometry()
			put(comp, g, err)
		}
	}
	// OpenVLA: the timm encoders by id, featurizer first, then the fused one
	// (labelled as Classify labels them).
	for i, id := range top.TimmModelIDs {
		if id == nil || i > 1 {
			continue
		}
		comp := CompDINOv2
		if i == 1 {
			comp = CompSigLIP
		}
		if g, ok := timmGeometry(*id); ok {
			out[comp] = g
		} else {
			warns = append(warns, fmt.Sprintf("%s: timm model %q has no known attention geometry", label, *id))
		}
	}
	for _, vb := range top.VisionBackbones {
		comp := Classify(vb.Prefix+"blocks.0.attn.qkv.weight", nil).Component
		if comp != CompDINOv2 && comp != CompSigLIP {
			warns = append(warns, fmt.Sprintf("%s: vision backbone prefix %q not recognised; ignored", label, vb.Prefix))
			continue
		}
		g, err := hfConfig{Heads: vb.Heads, HeadDim: vb.HeadDim, Hidden: vb.Hidden}.geometry()
		put(comp, g, err)
	}
	// A plain text or vision model config.
	if len(top.TextConfig) == 0 && len(top.VisionConfig) == 0 && top.Heads != nil {
		comp := visionComponent(top.ModelType)
		if comp == "" {
			comp = CompLLM
		}
		g, err := top.geometry()
		put(comp, g, err)
	}
	return out, warns
}

func visionComponent(modelType string) string {
	switch {
	case strings.Contains(modelType, "dinov2"):
		return CompDINOv2
	case modelType == "" || strings.Contains(modelType, "siglip"):
		return CompSigLIP // PaliGemma's vision_config may leave model_type out
	}
	return ""
}

// timmGeometry knows the timm encoders OpenVLA/Prismatic use.
func timmGeometry(id string) (Geometry, bool) {
	switch {
	case strings.Contains(id, "so400m"):
		return siglipSo400m, true
	case strings.Contains(id, "dinov2") || strings.Contains(id, "siglip"):
		for _, v := range []struct {
			size  string
			heads int
		}{{"small", 6}, {"base", 12}, {"large", 16}, {"giant", 24}} {
			if strings.Contains(id, "vit_"+v.size) {
				return Geometry{Heads: v.heads, KVHeads: v.heads, HeadDim: 64}, true
			}
		}
	}
	return Geometry{}, false
}

// geometry applies HF semantics: head_dim defaults to hidden_size / heads and
// num_key_value_heads to the head count. A Llama text_config that leaves them out
// (OpenVLA's does) takes LlamaConfig's defaults: 4096 wide, 32 heads.
func (c hfConfig) geometry() (Geometry, error) {
	heads, hidden := c.Heads, c.Hidden
	if c.ModelType == "llama" {
		if heads == nil {
			heads = ptr(32)
		}
		if hidden == nil {
			hidden = ptr(4096)
		}
	}
	if heads == nil {
		return Geometry{}, fmt.Errorf("num_attention_heads missing")
	}
	if *heads <= 0 || *heads > maxGeometryValue {
		return Geometry{}, fmt.Errorf("num_attention_heads %d out of range 1..%d", *heads, maxGeometryValue)
	}
	g := Geometry{Heads: *heads, KVHeads: *heads}
	if c.KVHeads != nil {
		g.KVHeads = *c.KVHeads
	}
	switch {
	case c.HeadDim != nil:
		g.HeadDim = *c.HeadDim
	case hidden != nil && *hidden > 0 && *hidden%*heads == 0:
		g.HeadDim = *hidden / *heads
	default:
		return Geometry{}, fmt.Errorf("head_dim missing and hidden_size not a multiple of num_attention_heads")
	}
	if err := g.validate(); err != nil {
		return Geometry{}, err
	}
	return g, nil
}

func ptr(v int) *int { return &v }
