// Package arch holds everything deltascope knows about model architectures by
// name and shape: how a base VLM's tensor names line up with its VLA's (Align),
// what each tensor is (Classify), and the attention geometry of each component
// (Geometries). It is pure: no file I/O, only names, shapes and config.json bytes
// handed in by the caller.
//
// # Components
//
// Stable strings, used in URLs and JSON:
//
//	llm             the language model's decoder layers and final norm
//	vision.dinov2   OpenVLA's vision_backbone.featurizer (DINOv2, timm names)
//	vision.siglip   OpenVLA's vision_backbone.fused_featurizer (SigLIP, timm names),
//	                PaliGemma's vision_tower (SigLIP, HF names)
//	projector       Prismatic/OpenVLA projector, PaliGemma multi_modal_projector
//	action_expert   π0/π0.5 gemma_expert
//	action_head     π0/π0.5 action_in_proj, action_out_proj, time_mlp_*, state_proj
//	embed           the language model's embed_tokens
//	lm_head         the output head
//	other           anything not recognised (never an error)
//
// OpenVLA's featurizer is taken to be DINOv2 and the fused featurizer SigLIP, as in
// every released OpenVLA; a single-encoder Prismatic model whose featurizer is
// SigLIP would be labelled vision.dinov2 (a name alone cannot tell them apart).
//
// # Kinds
//
// The kinds of the issue: attn_q, attn_k, attn_v, attn_o, attn_qkv (timm's fused
// q;k;v), ffn_gate, ffn_up, ffn_down, ffn_fc1, ffn_fc2, norm (including π0.5's
// adaRMS "*.dense" modulation layers), bias, embed (embed_tokens and lm_head: both
// are vocabulary × width matrices), other. Added here, so that units are never
// built from tensors that are not attention or FFN weights:
//
//	proj_fc1, proj_fc2, proj_fc3  Prismatic/OpenVLA projector layers (Prismatic's
//	                              projector.0/2/4); kept apart from ffn_fc1/ffn_fc2
//	                              because the projector is scored on its output rows
//	                              only and is usually protected
//	proj_linear                   PaliGemma's single projector layer
//	linear                        action-head layers (action_in_proj, time_mlp_in…)
//	layer_scale                   timm LayerScale (ls1/ls2), HF layer_scale1/2
//	pos_embed, patch_embed        position and patch embeddings of a ViT
//	token                         cls/reg/mask tokens
//	attn_pool                     SigLIP's attention-pooling head (unused by OpenVLA)
//
// A bias has Kind "bias" and Of = the kind of its weight ("ffn_fc1", "norm", …); a
// LayerScale has Of = the kind whose output it scales (ls1 → attn_o, ls2 → ffn_fc2).
package arch
