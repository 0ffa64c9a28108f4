package prune

import "slices"

// Mask is a resolved recipe: what to cut, tensor by tensor, and what it costs.
type Mask struct {
	Recipe Recipe `json:"recipe"`
	// Tensors holds every VLA tensor that loses rows or columns, sorted by name.
	Tensors []TensorMask `json:"tensors"`
	Params  Params       `json:"params"`
	// Rules has one entry per recipe rule, in recipe order.
	Rules []RuleStats `json:"rules"`
	// Widths are the per-layer widths after pruning of each component a rule
	// touched: the config patch of a sliced checkpoint.
	Widths   map[string]*Widths `json:"widths"`
	Warnings []string           `json:"warnings"`
}

// TensorMask is what one VLA tensor loses. Rows index dim 0; Cols index dim 1
// (masked tensors are matrices or vectors). Both are sorted, without repeats,
// and may share backing arrays with other tensors' lists: do not modify them.
type TensorMask struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	Rows  []int32 `json:"rows"`
	Cols  []int32 `json:"cols"`
}

// Tensor returns the mask of a VLA tensor, or nil when nothing of it is pruned.
func (m *Mask) Tensor(name string) *TensorMask {
	i, ok := slices.BinarySearchFunc(m.Tensors, name, func(t TensorMask, n string) int {
		switch {
		case t.Name < n:
			return -1
		case t.Name > n:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return &m.Tensors[i]
}

// KeptShape is the shape of the tensor once its pruned rows and columns are removed.
func (t *TensorMask) KeptShape() []int64 {
	s := slices.Clone(t.Shape)
	if len(s) >= 1 {
		s[0] -= int64(len(t.Rows))
	}
	if len(s) >= 2 {
		s[1] -= int64(len(t.Cols))
	}
	return s
}

// Count is a number of parameters before and after pruning.
type Count struct {
	Before int64 `json:"before"`
	After  int64 `json:"after"`
}

// Params is the parameter accounting of a mask. Before counts every parameter of
// the VLA (Result.VLAParams), including tensors no rule can touch.
type Params struct {
	Before int64 `json:"before"`
	After  int64 `json:"after"`
	// ByComponent uses the components of analysis/arch. VLA-only tensors, whose
	// shapes a Result does not keep, are counted under "vla_only" unless
	// Options.VLATensors gave their shapes.
	ByComponent map[string]Count `json:"by_component"`
	// ByLayer holds, per component, one Count per layer number (index = layer);
	// tensors outside numbered layers are in ByComponent only.
	ByLayer map[string][]Count `json:"by_layer"`
}

// VLAOnlyComponent is the ByComponent key of VLA-only tensors of unknown shape.
const VLAOnlyComponent = "vla_only"

// RuleStats is what one rule did.
type RuleStats struct {
	Module string `json:"module"`
	// Units is the number of eligible units (protected layers excluded); Target
	// is int(Units·ratio) (the sum of the per-layer targets under scope "layer");
	// Pruned is what was pruned after rounding.
	Units     int          `json:"units"`
	Protected int          `json:"protected_units"`
	Target    int          `json:"target"`
	Pruned    int          `json:"pruned"`
	Layers    []LayerStats `json:"layers"`
}

// LayerStats is one layer of a rule's module family.
type LayerStats struct {
	Layer     int     `json:"layer"`
	Units     int     `json:"units"`
	Pruned    int     `json:"pruned"`
	Fraction  float64 `json:"fraction"`
	Protected bool    `json:"protected,omitempty"`
}

// Widths are one component's layer widths after pruning, indexed by layer number
// (a layer the component lacks has 0). A slice is nil when no rule touched that
// kind of unit.
type Widths struct {
	IntermediateSize []int `json:"intermediate_size,omitempty"`
	Heads            []int `json:"num_attention_heads,omitempty"`
	KVHeads          []int `json:"num_key_value_heads,omitempty"`
	HeadDim          int   `json:"head_dim,omitempty"`
}
