package arch

import "strings"

// Rule names reported in Pair.Rule and Mismatch.Rule.
const (
	RuleExact     = "exact"
	RuleUser      = "user"
	RulePrismatic = "prismatic"
	RuleTimm      = "timm"
	RulePaliGemma = "paligemma"
	RuleLeRobot   = "lerobot"
	// RuleHF: transformers' composite-model naming alone (language_model.model. vs
	// model.language_model., language_model.lm_head. vs lm_head.), shared by
	// PaliGemma, LLaVA and OpenVLA's HF export.
	RuleHF     = "hf"
	RuleSuffix = "suffix"
	// RuleTied: a language model whose output head is tied to its input
	// embedding stores the matrix once, under either name, so one side's
	// embed_tokens is the other side's lm_head (π0.5 stores lm_head, its hub
	// PaliGemma base embed_tokens).
	RuleTied = "tied"
)

// familyTag records which built-in rewrites a name went through. When a pair's two
// names went through several, the most specific one names the pair (see ruleName).
type familyTag uint8

const (
	tagHF familyTag = 1 << iota
	tagPaliGemma
	tagLeRobot
	tagTimm
	tagPrismatic
)

// ruleName picks one rule for a pair: a Prismatic base paired with OpenVLA also
// goes through the generic language_model rewrite, but "prismatic" is what a reader
// wants to see.
func ruleName(t familyTag) string {
	switch {
	case t&tagPrismatic != 0:
		return RulePrismatic
	case t&tagTimm != 0:
		return RuleTimm
	case t&tagLeRobot != 0:
		return RuleLeRobot
	case t&tagPaliGemma != 0:
		return RulePaliGemma
	case t&tagHF != 0:
		return RuleHF
	}
	return RuleExact
}

// lerobotRoots are the π0/π0.5 module names that LeRobot nests under "model.".
var lerobotRoots = []string{
	"paligemma_with_expert.", "action_in_proj.", "action_out_proj.",
	"time_mlp_in.", "time_mlp_out.", "state_proj.",
	"action_time_mlp_in.", "action_time_mlp_out.",
}

// stripLeRobot removes LeRobot's leading "model." in front of a π0/π0.5 module.
func stripLeRobot(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "model.")
	if !ok {
		return name, false
	}
	for _, root := range lerobotRoots {
		if strings.HasPrefix(rest, root) {
			return rest, true
		}
	}
	return name, false
}

type prefixRewrite struct{ from, to string }

// prismaticRewrites turn Prismatic's training-checkpoint names (a torch pickle
// {"model": {"llm_backbone": ..., "projector": ...}}) into OpenVLA's HF names.
// The projector is nn.Sequential(Linear, GELU, Linear, GELU, Linear): its Linear
// layers sit at indices 0, 2, 4.
//
// The vision backbone's module names differ too: Prismatic's DinoSigLIP backbone
// holds dino_featurizer and siglip_featurizer, which OpenVLA's HF conversion
// renamed featurizer and fused_featurizer; a single-backbone Prismatic already
// says featurizer. A whole-VLM state dict spells them vision_backbone.*, a
// nested training checkpoint model.vision_backbone.*.
var prismaticRewrites = func() []prefixRewrite {
	rw := []prefixRewrite{
		{"model.vision_backbone.dino_featurizer.", "vision_backbone.featurizer."},
		{"vision_backbone.dino_featurizer.", "vision_backbone.featurizer."},
		{"model.vision_backbone.siglip_featurizer.", "vision_backbone.fused_featurizer."},
		{"vision_backbone.siglip_featurizer.", "vision_backbone.fused_featurizer."},
		{"model.vision_backbone.featurizer.", "vision_backbone.featurizer."},
		{"model.vision_backbone.fused_featurizer.", "vision_backbone.fused_featurizer."},
		{"model.llm_backbone.llm.", "language_model."},
		{"llm_backbone.llm.", "language_model."},
		{"llm.model.", "language_model.model."},
		{"llm.lm_head.", "language_model.lm_head."},
	}
	for _, p := range []string{"model.projector.projector.", "projector.projector.", "model.projector.", "projector."} {
		rw = append(rw,
			prefixRewrite{p + "0.", "projector.fc1."},
			prefixRewrite{p + "2.", "projector.fc2."},
			prefixRewrite{p + "4.", "projector.fc3."})
	}
	return rw
}()

// compositeRewrites bring PaliGemma's three namings (hub legacy, transformers ≥
// 4.52, openpi's after its prefix) to one: vision_tower., multi_modal_projector.,
// language_model. (without the inner ".model."), lm_head. They are applied in
// order, each at most once, so "model.language_model.model.x" also ends up as
// "language_model.x". The language-model ones are transformers' composite-model
// convention in general (OpenVLA's HF export uses it too), hence their own tag.
var compositeRewrites = []struct {
	prefixRewrite
	tag familyTag
}{
	{prefixRewrite{"model.vision_tower.", "vision_tower."}, tagPaliGemma},
	{prefixRewrite{"model.multi_modal_projector.", "multi_modal_projector."}, tagPaliGemma},
	{prefixRewrite{"model.language_model.", "language_model."}, tagHF},
	{prefixRewrite{"language_model.model.", "language_model."}, tagHF},
	{prefixRewrite{"language_model.lm_head.", "lm_head."}, tagHF},
}

// timmLayerScale: timm stores LayerScale as "gamma"; OpenVLA's HF export renamed it
// "scale_factor" because transformers rewrites parameters called gamma on load.
var timmLayerScale = []prefixRewrite{
	{".ls1.gamma", ".ls1.scale_factor"},
	{".ls2.gamma", ".ls2.scale_factor"},
}

// canonicalName maps a tensor name of any supported family to one canonical
// spelling, and says which family rewrites it took. Both sides of an alignment go
// through the same function, so the canonical spelling itself never leaves this
// package; only equality matters.
func canonicalName(name string) (string, familyTag) {
	var tag familyTag
	if rest, ok := stripLeRobot(name); ok {
		name, tag = rest, tag|tagLeRobot
	}
	if rest, ok := strings.CutPrefix(name, "paligemma_with_expert.paligemma."); ok {
		name, tag = rest, tag|tagPaliGemma
	}
	for _, rw := range prismaticRewrites {
		if rest, ok := strings.CutPrefix(name, rw.from); ok {
			name, tag = rw.to+rest, tag|tagPrismatic
			break
		}
	}
	for _, rw := range compositeRewrites {
		if rest, ok := strings.CutPrefix(name, rw.from); ok {
			name, tag = rw.to+rest, tag|rw.tag
		}
	}
	for _, rw := range timmLayerScale {
		if head, ok := strings.CutSuffix(name, rw.from); ok {
			name, tag = head+rw.to, tag|tagTimm
			break
		}
	}
	return name, tag
}

// isDottedSuffix reports whether short is long, or the trailing dotted segments of
// long ("layers.0.q.weight" of "model.layers.0.q.weight").
func isDottedSuffix(short, long string) bool {
	if len(short) > len(long) {
		return false
	}
	if short == long {
		return true
	}
	return strings.HasSuffix(long, short) && long[len(long)-len(short)-1] == '.'
}

// Suffix matching looks for names in a dotted-suffix relation without comparing
// every base name with every VLA name: both names of such a pair share their last
// two segments, or, when the shorter one is a single segment ("pos_embed"), the
// longer one's last segment is that name. bucketKeys gives the keys a VLA name is
// filed under; lookupKeys the keys a base name looks in.
func bucketKeys(name string) []string {
	last1, last2 := lastSegments(name)
	if last2 == "" {
		return []string{"1:" + last1, "0:" + name}
	}
	return []string{"1:" + last1, "2:" + last2}
}

func lookupKeys(name string) []string {
	last1, last2 := lastSegments(name)
	if last2 == "" {
		return []string{"1:" + name}
	}
	return []string{"2:" + last2, "0:" + last1}
}

// lastSegments returns the last dotted segment of name and the last two ("" when
// name has a single segment).
func lastSegments(name string) (last1, last2 string) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name, ""
	}
	j := strings.LastIndexByte(name[:i], '.')
	return name[i+1:], name[j+1:]
}

// genericParams are parameter names too common to match on their own.
var genericParams = map[string]bool{"weight": true, "bias": true, "": true}
