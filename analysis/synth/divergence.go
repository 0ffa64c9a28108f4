package synth

import (
	"hash/fnv"
	"math"
)

// component and module decide how far a tensor moves between base and VLA. The
// numbers are not from any paper; they give the dashboards the kind of structure
// real VLA fine-tunes show: the projector moves most, the language model more in
// later layers, attention and FFN differently, the vision encoders little.
type component uint8

const (
	compLLM component = iota
	compEmbed
	compHead
	compDINO
	compSigLIP
	compProjector
	compNone // VLA-only tensors: no base, nothing to diverge from
)

type module uint8

const (
	modAttn module = iota
	modFFN
	modNorm
	modOther
)

// relative ΔW std per component, before the module, layer and unit factors.
var componentRel = [...]float64{
	compLLM:       0.02,
	compEmbed:     0.008,
	compHead:      0.015,
	compDINO:      0.004,
	compSigLIP:    0.003,
	compProjector: 0.08,
	compNone:      0,
}

func moduleFactor(c component, m module) float64 {
	switch m {
	case modAttn:
		if c == compDINO || c == compSigLIP {
			return 0.5 // vision attention barely moves; FFN carries the adaptation
		}
		return 0.7
	case modFFN:
		return 1
	case modNorm:
		return 0.5
	}
	return 1
}

// layerFactor rises with depth (later LLM layers adapt most), with a fixed
// per-layer jitter so that neighbouring layers are not perfectly smooth.
func layerFactor(c component, layer, layers int) float64 {
	if layer < 0 || layers <= 0 {
		return 1
	}
	x := 0.0
	if layers > 1 {
		x = float64(layer) / float64(layers-1)
	}
	f := 0.7 + 0.6*x // vision encoders: gentle rise
	if c == compLLM {
		f = 0.4 + 1.6*x*x
	}
	h := fnv.New64a()
	h.Write([]byte{byte(c), byte(layer), byte(layer >> 8)})
	return f * math.Exp(0.25*hashNormal(h.Sum64()))
}

// divergence is the ΔW std relative to the tensor's base scale.
func divergence(c component, m module, layer, layers int) float64 {
	return componentRel[c] * moduleFactor(c, m) * layerFactor(c, layer, layers)
}

// unitScale is the heavy-tailed factor of one unit (head, channel, token): mostly
// lognormal around 1, and for about 3 % of units six times more, the "few channels
// and heads that move a lot" that unit-level pruning scores pick out.
// groupHash is hashString(group), computed once per tensor by the caller.
func unitScale(seed, groupHash uint64, unit int64) float32 {
	h := mix(seed ^ groupHash ^ mix(uint64(unit)+0x51ed2701))
	s := math.Exp(0.5 * hashNormal(h))
	if float64(mix(h)>>11)/(1<<53) < 0.03 {
		s *= 6
	}
	return float32(s)
}
