package synth

import (
	"fmt"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// Architecture blocks shared by the presets. Each adds specs in state-dict order
// under the names each side uses; dims are already scaled.

// sides names one architecture block on both sides: base and VLA prefixes, the
// base file it lives in, and the dtypes (vectors may differ from matrices).
type sides struct {
	base, vla        string // name prefixes; base "" with noBase for VLA-only blocks
	noBase           bool
	baseGroup        string
	baseMat, baseVec tensor.DType
	vlaMat, vlaVec   tensor.DType
	comp             component
	layerScaleBase   string // timm LayerScale parameter name in the base ("gamma")
	layerScaleVLA    string // and in the VLA ("scale_factor" in HF OpenVLA)
	frozenPatchEmbed bool
	frozenUnused     bool // OpenVLA's SigLIP attn_pool gets no gradient
	embedRowsBase    int64
	embedRowsVLA     int64
	tiedHeadInVLA    string // VLA name of an lm_head tied to embed_tokens and stored instead of it (openpi), "" for none
	headBaseName     string // untied lm_head names (Llama)
	headVLAName      string
	headRowsBase     int64
	headRowsVLA      int64
}

// tensor adds one tensor named suffix under the block's prefixes.
func (sd *sides) tensor(b *builder, suffix string, shape []int64, s spec) *spec {
	s.vla = sd.vla + suffix
	if !sd.noBase {
		s.base = sd.base + suffix
		s.baseGroup = sd.baseGroup
	}
	if s.baseShape == nil {
		s.baseShape = shape
	}
	if s.vlaShape == nil {
		s.vlaShape = shape
	}
	if len(s.vlaShape) >= 2 {
		s.baseDType, s.vlaDType = sd.baseMat, sd.vlaMat
	} else {
		s.baseDType, s.vlaDType = sd.baseVec, sd.vlaVec
	}
	return b.add(&s)
}

func (sd *sides) delta(m module, layer, layers int) float64 {
	if sd.noBase {
		return 0
	}
	return divergence(sd.comp, m, layer, layers)
}

func group(comp component, layer int, what string) string {
	return fmt.Sprintf("%d.%d.%s", comp, layer, what)
}

// decoder describes a Llama / Gemma decoder stack.
type decoder struct {
	layers                 int
	hidden, heads, kvHeads int64
	headDim, ffn           int64
	adaptiveNorms          bool // π0.5 action expert: input/post norms are Linear(w, 3w) "dense"
	skipEmbed              bool // the π0.5 expert has no embedding of its own
}

// addDecoder adds embed_tokens, every layer, the final norm and (when named) the
// output head. sd.base/sd.vla are the "model." prefixes ("model.",
// "language_model.model.", ...).
func addDecoder(b *builder, sd sides, d decoder) {
	switch {
	case d.skipEmbed:
	case sd.tiedHeadInVLA != "":
		// Tied to embed_tokens and stored once, under the head's name, as openpi's
		// π0.5 checkpoints do: the base's embed_tokens, the VLA's lm_head.
		b.add(&spec{base: sd.base + "embed_tokens.weight", baseGroup: sd.baseGroup, vla: sd.tiedHeadInVLA,
			baseShape: []int64{sd.embedRowsBase, d.hidden}, vlaShape: []int64{sd.embedRowsVLA, d.hidden},
			baseDType: sd.baseMat, vlaDType: sd.vlaMat,
			init: initMatrix, deltaRel: sd.deltaFor(compEmbed, modOther),
			rowUnit: unitAxis{group: group(compEmbed, -1, "vocab"), size: 1}})
	default:
		sd.tensor(b, "embed_tokens.weight", nil, spec{
			baseShape: []int64{sd.embedRowsBase, d.hidden}, vlaShape: []int64{sd.embedRowsVLA, d.hidden},
			init: initMatrix, deltaRel: sd.deltaFor(compEmbed, modOther),
			rowUnit: unitAxis{group: group(compEmbed, -1, "vocab"), size: 1},
		})
	}
	q, kv := d.heads*d.headDim, d.kvHeads*d.headDim
	for l := range d.layers {
		p := fmt.Sprintf("layers.%d.", l)
		attn, ffn := sd.delta(modAttn, l, d.layers), sd.delta(modFFN, l, d.layers)
		heads, kvGroup, ch := group(sd.comp, l, "attn"), group(sd.comp, l, "kv"), group(sd.comp, l, "ffn")
		sd.tensor(b, p+"self_attn.q_proj.weight", []int64{q, d.hidden}, spec{init: initMatrix, deltaRel: attn, rowUnit: unitAxis{group: heads, size: d.headDim}})
		sd.tensor(b, p+"self_attn.k_proj.weight", []int64{kv, d.hidden}, spec{init: initMatrix, deltaRel: attn, rowUnit: unitAxis{group: kvGroup, size: d.headDim}})
		sd.tensor(b, p+"self_attn.v_proj.weight", []int64{kv, d.hidden}, spec{init: initMatrix, deltaRel: attn, rowUnit: unitAxis{group: kvGroup, size: d.headDim}})
		sd.tensor(b, p+"self_attn.o_proj.weight", []int64{d.hidden, q}, spec{init: initMatrix, deltaRel: attn, colUnit: unitAxis{group: heads, size: d.headDim}})
		sd.tensor(b, p+"mlp.gate_proj.weight", []int64{d.ffn, d.hidden}, spec{init: initMatrix, deltaRel: ffn, rowUnit: unitAxis{group: ch, size: 1}})
		sd.tensor(b, p+"mlp.up_proj.weight", []int64{d.ffn, d.hidden}, spec{init: initMatrix, deltaRel: ffn, rowUnit: unitAxis{group: ch, size: 1}})
		sd.tensor(b, p+"mlp.down_proj.weight", []int64{d.hidden, d.ffn}, spec{init: initMatrix, deltaRel: ffn, colUnit: unitAxis{group: ch, size: 1}})
		norm := sd.delta(modNorm, l, d.layers)
		for _, n := range []string{"input_layernorm", "post_attention_layernorm"} {
			if d.adaptiveNorms {
				sd.tensor(b, p+n+".dense.weight", []int64{3 * d.hidden, d.hidden}, spec{init: initMatrix, deltaRel: norm})
				sd.tensor(b, p+n+".dense.bias", []int64{3 * d.hidden}, spec{init: initBias, deltaRel: norm})
			} else {
				sd.tensor(b, p+n+".weight", []int64{d.hidden}, spec{init: initNorm, deltaRel: norm})
			}
		}
	}
	norm := sd.delta(modNorm, d.layers-1, d.layers)
	if d.adaptiveNorms {
		sd.tensor(b, "norm.dense.weight", []int64{3 * d.hidden, d.hidden}, spec{init: initMatrix, deltaRel: norm})
		sd.tensor(b, "norm.dense.bias", []int64{3 * d.hidden}, spec{init: initBias, deltaRel: norm})
	} else {
		sd.tensor(b, "norm.weight", []int64{d.hidden}, spec{init: initNorm, deltaRel: norm})
	}
	if sd.headVLAName != "" {
		b.add(&spec{base: sd.headBaseName, vla: sd.headVLAName, baseGroup: sd.baseGroup,
			baseShape: []int64{sd.headRowsBase, d.hidden}, vlaShape: []int64{sd.headRowsVLA, d.hidden},
			baseDType: sd.baseMat, vlaDType: sd.vlaMat, init: initMatrix,
			deltaRel: sd.deltaFor(compHead, modOther), rowUnit: unitAxis{group: group(compHead, -1, "vocab"), size: 1}})
	}
}

// deltaFor is the divergence of a tensor whose component differs from the block's.
func (sd *sides) deltaFor(c component, m module) float64 {
	if sd.noBase {
		return 0
	}
	return divergence(c, m, -1, 0)
}

// vit describes a ViT encoder (timm or HF SigLIP naming).
type vit struct {
	layers             int
	width, heads, hdim int64
	ffn                int64
	positions          int64 // patch positions (224/14)² = 256
	patch, channels    int64
	cls                bool
	registers          int64
	layerScale         bool
	attnPool           bool // timm SigLIP MAP head
	// frozenTail: the last block and the final norm get no gradient, so ΔW is
	// exactly 0 there. Prismatic (OpenVLA) reads the second-to-last block's
	// patches (get_intermediate_layers(n={len(blocks) - 2}), no final norm).
	frozenTail bool
}

// addTimmViT adds a timm VisionTransformer with num_classes=0 (no head), as
// Prismatic builds its featurizers.
func addTimmViT(b *builder, sd sides, v vit) {
	D := v.width
	tok := spec{init: initToken, deltaRel: sd.delta(modOther, -1, 0)}
	if v.cls {
		sd.tensor(b, "cls_token", []int64{1, 1, D}, tok)
	}
	if v.registers > 0 {
		sd.tensor(b, "reg_token", []int64{1, v.registers, D}, tok)
	}
	sd.tensor(b, "pos_embed", []int64{1, v.positions, D}, tok)
	sd.tensor(b, "patch_embed.proj.weight", []int64{D, v.channels, v.patch, v.patch}, spec{init: initMatrix, frozen: sd.frozenPatchEmbed, deltaRel: sd.delta(modOther, -1, 0)})
	sd.tensor(b, "patch_embed.proj.bias", []int64{D}, spec{init: initBias, frozen: sd.frozenPatchEmbed, deltaRel: sd.delta(modOther, -1, 0)})
	for l := range v.layers {
		p := fmt.Sprintf("blocks.%d.", l)
		attn, ffn, norm := sd.delta(modAttn, l, v.layers), sd.delta(modFFN, l, v.layers), sd.delta(modNorm, l, v.layers)
		heads, ch := group(sd.comp, l, "attn"), group(sd.comp, l, "ffn")
		frozen := v.frozenTail && l == v.layers-1
		sd.tensor(b, p+"norm1.weight", []int64{D}, spec{init: initNorm, deltaRel: norm, frozen: frozen})
		sd.tensor(b, p+"norm1.bias", []int64{D}, spec{init: initBias, deltaRel: norm, frozen: frozen})
		// Fused q;k;v rows: head h owns rows h·d..(h+1)·d of each of the three blocks.
		sd.tensor(b, p+"attn.qkv.weight", []int64{3 * D, D}, spec{init: initMatrix, deltaRel: attn, frozen: frozen, rowUnit: unitAxis{group: heads, size: v.hdim, mod: D}})
		sd.tensor(b, p+"attn.qkv.bias", []int64{3 * D}, spec{init: initBias, deltaRel: attn, frozen: frozen})
		sd.tensor(b, p+"attn.proj.weight", []int64{D, D}, spec{init: initMatrix, deltaRel: attn, frozen: frozen, colUnit: unitAxis{group: heads, size: v.hdim}})
		sd.tensor(b, p+"attn.proj.bias", []int64{D}, spec{init: initBias, deltaRel: attn, frozen: frozen})
		if v.layerScale {
			addLayerScale(b, sd, p+"ls1.", D, attn, frozen)
		}
		sd.tensor(b, p+"norm2.weight", []int64{D}, spec{init: initNorm, deltaRel: norm, frozen: frozen})
		sd.tensor(b, p+"norm2.bias", []int64{D}, spec{init: initBias, deltaRel: norm, frozen: frozen})
		sd.tensor(b, p+"mlp.fc1.weight", []int64{v.ffn, D}, spec{init: initMatrix, deltaRel: ffn, frozen: frozen, rowUnit: unitAxis{group: ch, size: 1}})
		sd.tensor(b, p+"mlp.fc1.bias", []int64{v.ffn}, spec{init: initBias, deltaRel: ffn, frozen: frozen})
		sd.tensor(b, p+"mlp.fc2.weight", []int64{D, v.ffn}, spec{init: initMatrix, deltaRel: ffn, frozen: frozen, colUnit: unitAxis{group: ch, size: 1}})
		sd.tensor(b, p+"mlp.fc2.bias", []int64{D}, spec{init: initBias, deltaRel: ffn, frozen: frozen})
		if v.layerScale {
			addLayerScale(b, sd, p+"ls2.", D, ffn, frozen)
		}
	}
	norm := sd.delta(modNorm, v.layers-1, v.layers)
	sd.tensor(b, "norm.weight", []int64{D}, spec{init: initNorm, deltaRel: norm, frozen: v.frozenTail})
	sd.tensor(b, "norm.bias", []int64{D}, spec{init: initBias, deltaRel: norm, frozen: v.frozenTail})
	if v.attnPool {
		// timm AttentionPoolLatent. OpenVLA never runs it, so it gets no gradient
		// and stays bit-identical to the base.
		f := sd.frozenUnused
		sd.tensor(b, "attn_pool.latent", []int64{1, 1, D}, spec{init: initToken, frozen: f})
		sd.tensor(b, "attn_pool.q.weight", []int64{D, D}, spec{init: initMatrix, frozen: f})
		sd.tensor(b, "attn_pool.q.bias", []int64{D}, spec{init: initBias, frozen: f})
		sd.tensor(b, "attn_pool.kv.weight", []int64{2 * D, D}, spec{init: initMatrix, frozen: f})
		sd.tensor(b, "attn_pool.kv.bias", []int64{2 * D}, spec{init: initBias, frozen: f})
		sd.tensor(b, "attn_pool.proj.weight", []int64{D, D}, spec{init: initMatrix, frozen: f})
		sd.tensor(b, "attn_pool.proj.bias", []int64{D}, spec{init: initBias, frozen: f})
		sd.tensor(b, "attn_pool.norm.weight", []int64{D}, spec{init: initNorm, frozen: f})
		sd.tensor(b, "attn_pool.norm.bias", []int64{D}, spec{init: initBias, frozen: f})
		sd.tensor(b, "attn_pool.mlp.fc1.weight", []int64{v.ffn, D}, spec{init: initMatrix, frozen: f})
		sd.tensor(b, "attn_pool.mlp.fc1.bias", []int64{v.ffn}, spec{init: initBias, frozen: f})
		sd.tensor(b, "attn_pool.mlp.fc2.weight", []int64{D, v.ffn}, spec{init: initMatrix, frozen: f})
		sd.tensor(b, "attn_pool.mlp.fc2.bias", []int64{D}, spec{init: initBias, frozen: f})
	}
}

// addLayerScale adds a DINOv2 LayerScale vector, named "gamma" by timm and
// "scale_factor" by HF OpenVLA (which renames it to dodge a transformers quirk).
func addLayerScale(b *builder, sd sides, prefix string, D int64, rel float64, frozen bool) {
	s := &spec{vla: sd.vla + prefix + sd.layerScaleVLA, baseShape: []int64{D},
		baseDType: sd.baseVec, vlaDType: sd.vlaVec, init: initLayerScale, deltaRel: rel, frozen: frozen}
	if !sd.noBase {
		s.base, s.baseGroup = sd.base+prefix+sd.layerScaleBase, sd.baseGroup
	}
	b.add(s)
}

// addHFSigLIP adds a Hugging Face SiglipVisionModel's vision_model.* (no head), as
// PaliGemma embeds it.
func addHFSigLIP(b *builder, sd sides, v vit) {
	D := v.width
	emb := sd.delta(modOther, -1, 0)
	sd.tensor(b, "embeddings.patch_embedding.weight", []int64{D, v.channels, v.patch, v.patch}, spec{init: initMatrix, frozen: sd.frozenPatchEmbed, deltaRel: emb})
	sd.tensor(b, "embeddings.patch_embedding.bias", []int64{D}, spec{init: initBias, frozen: sd.frozenPatchEmbed, deltaRel: emb})
	sd.tensor(b, "embeddings.position_embedding.weight", []int64{v.positions, D}, spec{init: initToken, deltaRel: emb})
	for l := range v.layers {
		p := fmt.Sprintf("encoder.layers.%d.", l)
		attn, ffn, norm := sd.delta(modAttn, l, v.layers), sd.delta(modFFN, l, v.layers), sd.delta(modNorm, l, v.layers)
		heads, ch := group(sd.comp, l, "attn"), group(sd.comp, l, "ffn")
		for _, n := range []string{"k_proj", "v_proj", "q_proj"} {
			sd.tensor(b, p+"self_attn."+n+".weight", []int64{D, D}, spec{init: initMatrix, deltaRel: attn, rowUnit: unitAxis{group: heads, size: v.hdim}})
			sd.tensor(b, p+"self_attn."+n+".bias", []int64{D}, spec{init: initBias, deltaRel: attn})
		}
		sd.tensor(b, p+"self_attn.out_proj.weight", []int64{D, D}, spec{init: initMatrix, deltaRel: attn, colUnit: unitAxis{group: heads, size: v.hdim}})
		sd.tensor(b, p+"self_attn.out_proj.bias", []int64{D}, spec{init: initBias, deltaRel: attn})
		sd.tensor(b, p+"layer_norm1.weight", []int64{D}, spec{init: initNorm, deltaRel: norm})
		sd.tensor(b, p+"layer_norm1.bias", []int64{D}, spec{init: initBias, deltaRel: norm})
		sd.tensor(b, p+"mlp.fc1.weight", []int64{v.ffn, D}, spec{init: initMatrix, deltaRel: ffn, rowUnit: unitAxis{group: ch, size: 1}})
		sd.tensor(b, p+"mlp.fc1.bias", []int64{v.ffn}, spec{init: initBias, deltaRel: ffn})
		sd.tensor(b, p+"mlp.fc2.weight", []int64{D, v.ffn}, spec{init: initMatrix, deltaRel: ffn, colUnit: unitAxis{group: ch, size: 1}})
		sd.tensor(b, p+"mlp.fc2.bias", []int64{D}, spec{init: initBias, deltaRel: ffn})
		sd.tensor(b, p+"layer_norm2.weight", []int64{D}, spec{init: initNorm, deltaRel: norm})
		sd.tensor(b, p+"layer_norm2.bias", []int64{D}, spec{init: initBias, deltaRel: norm})
	}
	norm := sd.delta(modNorm, v.layers-1, v.layers)
	sd.tensor(b, "post_layernorm.weight", []int64{D}, spec{init: initNorm, deltaRel: norm})
	sd.tensor(b, "post_layernorm.bias", []int64{D}, spec{init: initBias, deltaRel: norm})
}

// linear adds weight [out, in] and bias [out] named name.weight / name.bias on
// each side; rows and cols are the unit groups of its outputs and inputs.
func linear(b *builder, sd sides, baseName, vlaName string, out, in int64, rel float64, rows, cols string) {
	w := &spec{vla: vlaName + ".weight", baseShape: []int64{out, in}, baseDType: sd.baseMat, vlaDType: sd.vlaMat,
		init: initMatrix, deltaRel: rel, rowUnit: unitAxis{group: rows, size: 1}, colUnit: unitAxis{group: cols, size: 1}}
	bias := &spec{vla: vlaName + ".bias", baseShape: []int64{out}, baseDType: sd.baseVec, vlaDType: sd.vlaVec,
		init: initBias, deltaRel: rel}
	if !sd.noBase {
		w.base, w.baseGroup = baseName+".weight", sd.baseGroup
		bias.base, bias.baseGroup = baseName+".bias", sd.baseGroup
	}
	b.add(w)
	b.add(bias)
}
