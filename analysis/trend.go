package analysis

import "math"

// GroupNorms are ‖ΔW‖ and ‖W_base‖ over a group of tensors (Frobenius norms
// of the group flattened), for trends across the checkpoints of a run.
type GroupNorms struct {
	Delta float64 `json:"delta_norm"`
	Base  float64 `json:"base_norm"`
}

// Rel is the group's relative ΔW, ‖ΔW‖ / ‖W_base‖ (0 when nothing changed).
func (g GroupNorms) Rel() Num { return ratio(g.Delta, g.Base) }

// ComponentNorms sums the numeric tensors of each component; "" is the whole
// model.
func ComponentNorms(ts []TensorStats) map[string]GroupNorms {
	dd, bb := map[string]float64{}, map[string]float64{}
	for i := range ts {
		t := &ts[i]
		d, b := float64(t.FroDelta), float64(t.FroBase)
		if !t.Numeric || math.IsNaN(d) || math.IsNaN(b) {
			continue
		}
		for _, c := range []string{"", t.Component} {
			dd[c] += d * d
			bb[c] += b * b
		}
	}
	out := make(map[string]GroupNorms, len(dd))
	for c := range dd {
		out[c] = GroupNorms{Delta: math.Sqrt(dd[c]), Base: math.Sqrt(bb[c])}
	}
	return out
}
