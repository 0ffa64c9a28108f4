package arch

import (
	"strconv"
	"strings"
)

// Components (see the package comment).
const (
	CompLLM          = "llm"
	CompDINOv2       = "vision.dinov2"
	CompSigLIP       = "vision.siglip"
	CompProjector    = "projector"
	CompActionExpert = "action_expert"
	CompActionHead   = "action_head"
	CompEmbed        = "embed"
	CompLMHead       = "lm_head"
	CompOther        = "other"
)

// Kinds (see the package comment).
const (
	KindAttnQ      = "attn_q"
	KindAttnK      = "attn_k"
	KindAttnV      = "attn_v"
	KindAttnO      = "attn_o"
	KindAttnQKV    = "attn_qkv"
	KindFFNGate    = "ffn_gate"
	KindFFNUp      = "ffn_up"
	KindFFNDown    = "ffn_down"
	KindFFNFc1     = "ffn_fc1"
	KindFFNFc2     = "ffn_fc2"
	KindNorm       = "norm"
	KindBias       = "bias"
	KindEmbed      = "embed"
	KindOther      = "other"
	KindProjFc1    = "proj_fc1"
	KindProjFc2    = "proj_fc2"
	KindProjFc3    = "proj_fc3"
	KindProjLinear = "proj_linear"
	KindLinear     = "linear"
	KindLayerScale = "layer_scale"
	KindPosEmbed   = "pos_embed"
	KindPatchEmbed = "patch_embed"
	KindToken      = "token"
	KindAttnPool   = "attn_pool"
)

// Class is what a tensor is: its component, its layer (-1 when it has none) and
// its kind. Of is set for biases and LayerScales: the kind of the weight they
// belong to (or whose output they scale).
type Class struct {
	Component string
	Layer     int
	Kind      string
	Of        string
}

// Classify names the component, layer and kind of a tensor from its name (the VLA
// side's, as stored; Prismatic, PaliGemma-legacy and bare timm names work too)
// and shape. Anything unrecognised is Component "other", Kind "other".
func Classify(name string, shape []int64) Class {
	name, _ = stripLeRobot(name)
	segs := strings.Split(name, ".")
	comp := componentOf(name, segs)
	c := Class{Component: comp, Layer: layerOf(segs), Kind: KindOther}
	param := segs[len(segs)-1]
	module := segs[:len(segs)-1]

	switch {
	case hasSegment(segs, "attn_pool"):
		c.Kind = KindAttnPool
	case param == "cls_token" || param == "reg_token" || param == "mask_token" || param == "register_tokens":
		c.Kind = KindToken
	case param == "pos_embed":
		c.Kind = KindPosEmbed
	case isLayerScale(module, param):
		c.Kind = KindLayerScale
		c.Of = layerScaleOf(module[len(module)-1])
	case param == "bias":
		c.Kind = KindBias
		c.Of = moduleKind(comp, module, nil)
	case param == "weight":
		c.Kind = moduleKind(comp, module, shape)
	}
	if c.Kind == KindAttnPool || c.Kind == KindEmbed {
		c.Layer = -1
	}
	return c
}

// actionHeadRoots are π0/π0.5's small dense heads around the action expert.
var actionHeadRoots = []string{
	"action_in_proj", "action_out_proj", "time_mlp_in", "time_mlp_out",
	"state_proj", "action_time_mlp_in", "action_time_mlp_out",
}

func componentOf(name string, segs []string) string {
	for _, root := range actionHeadRoots {
		if segs[0] == root {
			return CompActionHead
		}
	}
	switch {
	case hasSegment(segs, "gemma_expert"):
		return CompActionExpert
	case hasSegment(segs, "embed_tokens"):
		return CompEmbed
	case hasSegment(segs, "lm_head"):
		return CompLMHead
	case strings.Contains(name, "vision_backbone.fused_featurizer."):
		return CompSigLIP
	case strings.Contains(name, "vision_backbone.featurizer."):
		return CompDINOv2
	case hasSegment(segs, "vision_tower"), hasSegment(segs, "vision_model"):
		return CompSigLIP
	case hasSegment(segs, "multi_modal_projector"), hasSegment(segs, "projector"):
		return CompProjector
	case hasSegment(segs, "language_model"), hasSegment(segs, "llm_backbone"),
		strings.HasPrefix(name, "llm.model."):
		return CompLLM
	// Plain HF decoders (Llama, TinyLlama, Gemma): model.layers.N…, model.norm.
	case strings.HasPrefix(name, "model.layers."), strings.HasPrefix(name, "model.norm."):
		return CompLLM
	}
	return CompOther
}

// layerOf finds "layers.N", "blocks.N" or "layer.N" (HF ViT) and returns N.
func layerOf(segs []string) int {
	for i := 0; i+1 < len(segs); i++ {
		switch segs[i] {
		case "layers", "blocks", "layer":
			if n, err := strconv.Atoi(segs[i+1]); err == nil && n >= 0 && n < 1<<20 {
				return n
			}
		}
	}
	return -1
}

// moduleKind is the kind of the weight of a module, given its path. shape, when
// known, guards the vocabulary matrices (which must be 2-D).
func moduleKind(comp string, module []string, shape []int64) string {
	if len(module) == 0 {
		return KindOther
	}
	last := module[len(module)-1]
	prev := ""
	if len(module) >= 2 {
		prev = module[len(module)-2]
	}
	switch comp {
	case CompProjector:
		switch last {
		case "fc1", "0":
			return KindProjFc1
		case "fc2", "2":
			return KindProjFc2
		case "fc3", "4":
			return KindProjFc3
		case "linear":
			return KindProjLinear
		}
		return KindOther
	case CompActionHead:
		return KindLinear
	}
	switch last {
	case "embed_tokens", "lm_head":
		if shape != nil && len(shape) != 2 {
			return KindOther
		}
		return KindEmbed
	case "q_proj", "query":
		return KindAttnQ
	case "k_proj", "key":
		return KindAttnK
	case "v_proj", "value":
		return KindAttnV
	case "o_proj", "out_proj":
		return KindAttnO
	case "qkv":
		return KindAttnQKV
	case "gate_proj":
		return KindFFNGate
	case "up_proj":
		return KindFFNUp
	case "down_proj":
		return KindFFNDown
	case "fc1":
		return KindFFNFc1
	case "fc2":
		return KindFFNFc2
	case "patch_embedding":
		return KindPatchEmbed
	case "position_embedding":
		return KindPosEmbed
	case "proj":
		switch prev {
		case "attn":
			return KindAttnO // timm ViT attention output
		case "patch_embed":
			return KindPatchEmbed
		}
	case "dense":
		if isNormName(prev) {
			return KindNorm // π0.5 adaRMS: the norm's modulation layer
		}
		if prev == "output" && len(module) >= 3 && module[len(module)-3] == "attention" {
			return KindAttnO // HF ViT/DINOv2 attention.output.dense
		}
	}
	if isNormName(last) {
		return KindNorm
	}
	return KindOther
}

// isNormName recognises norm modules by name: input_layernorm, layer_norm1,
// norm1, norm, post_layernorm, pre_layrnorm (sic, CLIP), q_norm, ln_f…
func isNormName(s string) bool {
	if strings.Contains(s, "norm") || strings.Contains(s, "layrnorm") {
		return true
	}
	return s == "ln" || strings.HasPrefix(s, "ln_")
}

// isLayerScale: timm "ls1.gamma" / OpenVLA "ls1.scale_factor", HF "layer_scale1.lambda1".
func isLayerScale(module []string, param string) bool {
	if len(module) == 0 {
		return false
	}
	switch module[len(module)-1] {
	case "ls1", "ls2":
		return param == "gamma" || param == "scale_factor"
	case "layer_scale1", "layer_scale2":
		return param == "lambda1"
	}
	return false
}

// layerScaleOf: ls1 scales the attention block's output, ls2 the MLP's.
func layerScaleOf(module string) string {
	if strings.HasSuffix(module, "1") {
		return KindAttnO
	}
	return KindFFNFc2
}

func hasSegment(segs []string, s string) bool {
	for _, x := range segs {
		if x == s {
			return true
		}
	}
	return false
}
