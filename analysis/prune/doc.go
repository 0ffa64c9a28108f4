// Package prune turns a divergence analysis into structured pruning masks: a
// Recipe (one Rule per module family) resolves, deterministically, to a Mask
// (per VLA tensor, the rows and columns to cut, with parameter accounting), which
// the exports write as a recipe, indices, keep-masks, a masked checkpoint or a
// sliced one.
//
// # Units and coupling
//
// A module family is a component's FFN channels or attention heads (see
// Modules). Pruning a unit cuts, together:
//
//	FFN channel j (gated)  gate row j, up row j, down column j (+ gate/up bias entries)
//	FFN channel j (fc)     fc1 row j, fc1 bias entry j, fc2 column j
//	projector unit         fc1 and fc2 output rows ranked together as one family (OpenVLA: 8,704 +
//	                       4,096 units): an fc1 row j takes its bias entry and fc2 column j, an fc2
//	                       row j its bias entry and fc3 column j (without an fc3, fc1 rows only)
//	head h (q/k/v/o)       q rows [h·d, (h+1)·d) and bias entries, o columns of the same range;
//	                       k and v rows of KV group g = h ÷ (heads/kv_heads) only when every query
//	                       head of g is pruned (GQA; under MQA only when all heads of the layer go);
//	                       under the pi05 variant an LLM's (or action expert's) k/v rows never go,
//	                       as in the authors' π0.5 code, even when every head of a layer does
//	head h (timm fused)    the head's rows in each of the q, k and v blocks of qkv (and its bias),
//	                       proj columns [h·d, (h+1)·d)
//
// Output projections' biases, norms and LayerScales keep the residual width and
// are never cut.
//
// # Ranking
//
// Each rule ranks the units of its family in the unprotected layers — all
// layers together (scope "global", the default) or each layer on its own (scope
// "layer") — and prunes the first int(N·ratio) of N (per layer under "layer"),
// with N rounded toward zero exactly as Python's int() does:
//
//   - highest: descending ΔW unit score (analysis.BuildUnits with the rule's
//     metric and variant; the projector's fc1 and fc2 row scores here);
//   - lowest: ascending ΔW unit score;
//   - magnitude: ascending L2 norm of the unit's base weights (the rows and
//     columns it owns; k/v rows only when no other head shares them);
//   - random: ascending SplitMix64(seed ^ SplitMix64(layer<<32 | index)), a
//     seeded uniform sample that does not depend on other layers.
//
// Equal scores are broken by (layer, index), ascending; a NaN score ranks as
// the lowest score and -0 as +0. Protected layers are never pruned and are not
// counted in N.
//
// RoundTo r > 1 then adjusts each unprotected layer: its kept count k becomes
// the nearest multiple of r (halves round up), at most the layer's size, and r
// rather than 0 when k > 0; the layer then prunes its first (size − k') units in
// the same ranking. The total may differ from int(N·ratio): a warning says so.
//
// A rule may prune every unit of a layer, as the authors' code does (the real
// OpenVLA's frozen last vision blocks have ΔW = 0 and go whole under the
// "lowest" rules); Resolve warns, and the exports keep the layer at width 0.
//
// # Exports
//
// WriteRecipe / ReadRecipe: the recipe as JSON. WriteIndices: JSON of the pruned
// rows and columns per tensor. WriteMasks: a safetensors file of U8 keep-masks,
// "<tensor>.__rows__" (one byte per row) and "<tensor>.__cols__" (one per
// column), 1 = keep; MaskSnippet applies them in PyTorch. WriteMasked: the VLA's
// own files with pruned cells zeroed and every other byte identical.
// WriteSliced: the same files with pruned cells removed (a layer that lost every
// unit keeps its tensors at width 0), plus widths.json, and the VLA's
// config.json with a SlicedConfigKey object giving every layer's width.
// Checkpoint exports stream one block of rows at a time and appear whole or not
// at all (written under a temporary name, then renamed).
//
// Every export takes a context and checks it at least once per block (8 MiB)
// or tensor: a cancelled export (Ctrl-C, a client that hung up) stops at once,
// and a checkpoint export removes its temporary folder and returns an
// *InterruptedError. ExportKinds is the one table of kinds; the command line
// and the server look kinds up there (LookupExport) and dispatch through it
// (WriteFile, WriteFolder, Entries).
//
// # Comparing recipes
//
// PrunedUnits reads the units a mask prunes back from its tensor masks;
// Compare gives two masks' parameter deltas per component and the overlap
// (Jaccard) of their pruned units per module. PrunableModules lists the module
// families a rule can name in an analysis, with their units per layer.
package prune
