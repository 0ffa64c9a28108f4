package arch

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Geometry is the attention layout of one component: query heads, key/value heads
// (fewer under GQA, 1 under MQA) and the size of one head.
type Geometry struct {
	Heads   int `json:"heads"`
	KVHeads int `json:"kv_heads"`
	HeadDim int `json:"head_dim"`
}

func (g Geometry) validate() error {
	switch {
	case g.Heads <= 0 || g.Heads > maxGeometryValue:
		return fmt.Errorf("heads %d out of range 1..%d", g.Heads, maxGeometryValue)
	case g.HeadDim <= 0 || g.HeadDim > maxGeometryValue:
		return fmt.Errorf("head_dim %d out of range 1..%d", g.HeadDim, maxGeometryValue)
	case g.KVHeads <= 0 || g.KVHeads > g.Heads || g.Heads%g.KVHeads != 0:
		return fmt.Errorf("kv_heads %d must divide heads %d", g.KVHeads, g.Heads)
	}
	return nil
}

// attnShapes are the query and key projection sizes of a component's first layer.
type attnShapes struct {
	// For timm's fused qkv, qRows and kRows are each a third of its rows.
	qRows, kRows, width int64 // width: the input dimension
}

func (s attnShapes) fits(g Geometry) bool {
	return int64(g.Heads)*int64(g.HeadDim) == s.qRows && int64(g.KVHeads)*int64(g.HeadDim) == s.kRows
}

// Geometries returns the attention geometry of each component, by priority:
// overrides (the user's; a partial one is completed from the shapes), then
// config.json contents, then known defaults for recognised families inferred from
// the q/k shapes in tensors (VLA-side names). A config that contradicts the
// shapes is ignored with a warning. A component with attention tensors and no
// geometry is left out of the map, with a warning telling the user to set its
// heads; heuristic choices also come with a warning.
func Geometries(configs [][]byte, tensors []Named, overrides map[string]Geometry) (map[string]Geometry, []string) {
	out, _, warns := GeometriesGuessed(configs, tensors, overrides)
	return out, warns
}

// GeometriesGuessed is Geometries that also lists the components whose
// geometry is a guess (inferred from shapes alone by a fallback rule, not from
// the user, a config or a recognised published model), sorted: a head rule on
// one of them deserves a warning.
func GeometriesGuessed(configs [][]byte, tensors []Named, overrides map[string]Geometry) (map[string]Geometry, []string, []string) {
	var warns []string
	guessed := []string{}
	fromConfig := map[string]Geometry{}
	for i, data := range configs {
		got, w := configGeometries(data, i)
		warns = append(warns, w...)
		for _, comp := range slices.Sorted(maps.Keys(got)) {
			g := got[comp]
			if prev, ok := fromConfig[comp]; ok && prev != g {
				warns = append(warns, fmt.Sprintf("config #%d: %s geometry %s disagrees with an earlier config's %s; keeping the earlier", i+1, comp, g, prev))
				continue
			}
			fromConfig[comp] = g
		}
	}
	shapes, withAttention, gemma := collectAttention(tensors)

	comps := map[string]bool{}
	for c := range withAttention {
		comps[c] = true
	}
	for c := range fromConfig {
		comps[c] = true
	}
	for c := range overrides {
		comps[c] = true
	}
	out := map[string]Geometry{}
	for _, comp := range slices.Sorted(maps.Keys(comps)) {
		s, haveShapes := shapes[comp]
		if o, ok := overrides[comp]; ok {
			g, err := completeOverride(o, s, haveShapes)
			if err != nil {
				warns = append(warns, fmt.Sprintf("%s: heads override %s: %v; set heads for component %s (--heads %s=HEADS[:KV_HEADS])", comp, o, err, comp, comp))
				continue
			}
			if haveShapes && !s.fits(g) {
				warns = append(warns, fmt.Sprintf("%s: heads override %s does not fit q rows %d / k rows %d; using it as given", comp, g, s.qRows, s.kRows))
			}
			out[comp] = g
			continue
		}
		if g, ok := fromConfig[comp]; ok {
			if !haveShapes || s.fits(g) {
				out[comp] = g
				continue
			}
			warns = append(warns, fmt.Sprintf("%s: config geometry %s does not fit q rows %d / k rows %d; inferring from shapes", comp, g, s.qRows, s.kRows))
		}
		if !haveShapes {
			if withAttention[comp] {
				warns = append(warns, fmt.Sprintf("%s: attention weights of unexpected shape; set heads for component %s (--heads %s=HEADS[:KV_HEADS])", comp, comp, comp))
			}
			continue
		}
		g, note, ok := inferGeometry(comp, s, gemma)
		if !ok {
			warns = append(warns, fmt.Sprintf("%s: attention geometry unknown (q rows %d, k rows %d); set heads for component %s (--heads %s=HEADS[:KV_HEADS])", comp, s.qRows, s.kRows, comp, comp))
			continue
		}
		if note != "" {
			warns = append(warns, fmt.Sprintf("%s: %s; set heads for component %s (--heads %s=HEADS[:KV_HEADS]) if this is wrong", comp, note, comp, comp))
			guessed = append(guessed, comp)
		}
		out[comp] = g
	}
	return out, guessed, warns
}

func (g Geometry) String() string {
	return fmt.Sprintf("%d heads × %d (%d KV)", g.Heads, g.HeadDim, g.KVHeads)
}

// collectAttention finds, per component, the q and k projection shapes of the
// lowest-numbered layer (withAttention: every component that has q or qkv
// weights, usable or not), and whether the names are of the Gemma family
// (π0/π0.5, PaliGemma), whose defaults differ from Llama's.
func collectAttention(tensors []Named) (shapes map[string]attnShapes, withAttention map[string]bool, gemma bool) {
	type found struct {
		layer int
		name  string
		kind  string
		shape []int64
	}
	better := func(cur *found, layer int, name string) bool {
		return cur == nil || layer < cur.layer || (layer == cur.layer && name < cur.name)
	}
	qs, ks := map[string]*found{}, map[string]*found{}
	withAttention = map[string]bool{}
	for _, t := range tensors {
		lower := strings.ToLower(t.Name)
		// PaliGemma's projector is one "linear" (LLaVA's, beside a Llama, has
		// linear_1/linear_2); openpi and LeRobot names say gemma outright.
		if strings.Contains(lower, "gemma") || strings.Contains(lower, "multi_modal_projector.linear.") {
			gemma = true
		}
		if len(t.Shape) != 2 || t.Shape[0] <= 0 || t.Shape[1] <= 0 {
			continue
		}
		c := Classify(t.Name, t.Shape)
		if c.Component == CompEmbed || c.Component == CompLMHead || c.Component == CompActionHead || c.Component == CompProjector {
			continue
		}
		switch c.Kind {
		case KindAttnQ, KindAttnQKV:
			withAttention[c.Component] = true
			if better(qs[c.Component], c.Layer, t.Name) {
				qs[c.Component] = &found{c.Layer, t.Name, c.Kind, t.Shape}
			}
		case KindAttnK:
			if better(ks[c.Component], c.Layer, t.Name) {
				ks[c.Component] = &found{c.Layer, t.Name, c.Kind, t.Shape}
			}
		}
	}
	shapes = map[string]attnShapes{}
	for comp, q := range qs {
		s := attnShapes{qRows: q.shape[0], kRows: q.shape[0], width: q.shape[1]}
		if q.kind == KindAttnQKV {
			if q.shape[0]%3 != 0 {
				continue // not a q;k;v stack: leave it to the user
			}
			s.qRows, s.kRows = q.shape[0]/3, q.shape[0]/3
		} else if k := ks[comp]; k != nil {
			s.kRows = k.shape[0]
		}
		if s.qRows > 0 {
			shapes[comp] = s
		}
	}
	return shapes, withAttention, gemma
}

// knownShape is a published model's attention, recognised by its q/k sizes.
type knownShape struct {
	comp             string
	gemma            bool // the family the names must belong to
	qRows, kRows, in int64
	g                Geometry
}

var knownShapes = []knownShape{
	{CompLLM, true, 2048, 256, 2048, Geometry{8, 1, 256}},          // Gemma 2B (PaliGemma, π0.5)
	{CompActionExpert, true, 2048, 256, 1024, Geometry{8, 1, 256}}, // openpi gemma_300m
	{CompLLM, false, 4096, 4096, 4096, Geometry{32, 32, 128}},      // Llama-2 7B (OpenVLA)
	{CompLLM, false, 2048, 256, 2048, Geometry{32, 4, 64}},         // TinyLlama 1.1B
	{CompDINOv2, false, 1024, 1024, 1024, Geometry{16, 16, 64}},    // DINOv2 ViT-L/14
	{CompSigLIP, false, 1152, 1152, 1152, Geometry{16, 16, 72}},    // SigLIP so400m/14
}

// inferGeometry: known published shapes first, then the family rules. note is
// non-empty when the result is a guess the user should see.
func inferGeometry(comp string, s attnShapes, gemma bool) (Geometry, string, bool) {
	for _, k := range knownShapes {
		// Vision encoders are the same whichever language model they feed.
		if k.comp == comp && (k.gemma == gemma || comp == CompSigLIP || comp == CompDINOv2) && k.qRows == s.qRows && k.kRows == s.kRows && k.in == s.width {
			return k.g, "", true
		}
	}
	switch comp {
	case CompDINOv2, CompSigLIP:
		return visionGeometry(comp, s)
	case CompLLM, CompActionExpert:
		if gemma || comp == CompActionExpert {
			return gemmaGeometry(s)
		}
		return llamaGeometry(s)
	}
	return Geometry{}, "", false
}

// gemmaGeometry: Gemma 2B and openpi's expert use multi-query attention, so the
// k projection is exactly one head: head_dim = k rows, heads = q rows / head_dim.
// When k is as large as q (no MQA), fall back to Gemma's usual head_dim 256.
func gemmaGeometry(s attnShapes) (Geometry, string, bool) {
	if s.kRows < s.qRows && s.qRows%s.kRows == 0 {
		return Geometry{Heads: int(s.qRows / s.kRows), KVHeads: 1, HeadDim: int(s.kRows)}, "", true
	}
	if s.kRows == s.qRows && s.qRows%256 == 0 {
		h := int(s.qRows / 256)
		return Geometry{Heads: h, KVHeads: h, HeadDim: 256}, "no config; assumed Gemma head_dim 256 without MQA", true
	}
	return Geometry{}, "", false
}

// llamaGeometry: Llama-2/3 use head_dim 128 (4096 = 32 × 128, 5120 = 40 × 128,
// 8192 = 64 × 128); 2048-wide Llamas (TinyLlama, Llama-3.2 1B) use 64.
func llamaGeometry(s attnShapes) (Geometry, string, bool) {
	d, known := int64(128), true
	switch s.width {
	case 2048:
		d = 64
	case 3072, 4096, 5120, 8192:
	default:
		known = false
	}
	if !known || s.qRows%d != 0 || s.kRows%d != 0 {
		d = pickHeadDim(gcd(s.qRows, s.kRows), 128, 64)
		known = false
	}
	if d == 0 {
		return Geometry{}, "", false
	}
	g := Geometry{Heads: int(s.qRows / d), KVHeads: int(s.kRows / d), HeadDim: int(d)}
	if g.validate() != nil {
		return Geometry{}, "", false
	}
	if !known {
		return g, fmt.Sprintf("no config and width %d not a known Llama; assumed head_dim %d", s.width, d), true
	}
	return g, "", true
}

// visionGeometry: ViTs here have no GQA. DINOv2 always uses head_dim 64; SigLIP 64
// except so400m's 72 (1152 wide). Unknown widths take 64 if it divides, else 72,
// else the largest divisor up to 128 — with a warning.
func visionGeometry(comp string, s attnShapes) (Geometry, string, bool) {
	if s.kRows != s.qRows {
		return Geometry{}, "", false
	}
	knownWidths := map[string][]int64{
		CompDINOv2: {384, 768, 1024, 1536},
		CompSigLIP: {768, 1024},
	}
	if slices.Contains(knownWidths[comp], s.qRows) {
		h := int(s.qRows / 64)
		return Geometry{Heads: h, KVHeads: h, HeadDim: 64}, "", true
	}
	d := pickHeadDim(s.qRows, 64, 72)
	if d == 0 {
		return Geometry{}, "", false
	}
	h := int(s.qRows / d)
	return Geometry{Heads: h, KVHeads: h, HeadDim: int(d)},
		fmt.Sprintf("no config and width %d not a known encoder; assumed %d heads × %d", s.qRows, h, d), true
}

// pickHeadDim returns the first preferred head size that divides n, else the
// largest divisor of n up to 128; 0 when n ≤ 0.
func pickHeadDim(n int64, preferred ...int64) int64 {
	if n <= 0 {
		return 0
	}
	for _, p := range preferred {
		if n%p == 0 {
			return p
		}
	}
	for d := min(n, 128); d >= 1; d-- {
		if n%d == 0 {
			return d
		}
	}
	return 0
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// completeOverride fills what the user left at zero from the shapes: heads from
// head_dim or the reverse, KV heads from the k rows (or = heads).
func completeOverride(o Geometry, s attnShapes, haveShapes bool) (Geometry, error) {
	g := o
	if haveShapes {
		switch {
		case g.Heads == 0 && g.HeadDim > 0 && s.qRows%int64(g.HeadDim) == 0:
			g.Heads = int(s.qRows / int64(g.HeadDim))
		case g.HeadDim == 0 && g.Heads > 0 && s.qRows%int64(g.Heads) == 0:
			g.HeadDim = int(s.qRows / int64(g.Heads))
		}
		if g.KVHeads == 0 && g.HeadDim > 0 && s.kRows%int64(g.HeadDim) == 0 {
			g.KVHeads = int(s.kRows / int64(g.HeadDim))
		}
	}
	if g.KVHeads == 0 {
		g.KVHeads = g.Heads
	}
	return g, g.validate()
}
