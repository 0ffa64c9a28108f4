// Package analysis computes the adaptation divergence ΔW = W_VLA − W_VLM between a
// base model and the VLA fine-tuned from it: per tensor, row, column, FFN channel
// and attention head. It knows nothing of HTTP or SQL: checkpoints come in through
// analysis/checkpoint, results go out as plain values.
package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/deltascope/deltascope/analysis/arch"
)

// EngineVersion changes whenever a statistic could change for the same inputs, so
// that cached analyses computed by an older engine are not reused.
const EngineVersion = "4" // 2: π0.5 SigLIP heads scored by their q rows alone; 3: pairs compared at the VLA's precision by default; 4: a tied embedding saved as lm_head on one side and embed_tokens on the other is paired

// Num is a float64 that encodes NaN and ±Inf as JSON null (a cosine of an all-zero
// tensor, a relative ΔW against a zero base), since JSON has no such numbers.
type Num float64

func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// TensorStats is the divergence of one aligned tensor pair. Field names follow the
// `analyze --json` contract in DESIGN.md.
type TensorStats struct {
	Base      string  `json:"base"`
	VLA       string  `json:"vla"`
	Component string  `json:"component"`
	Layer     int     `json:"layer"` // -1 when the tensor belongs to no numbered layer
	Kind      string  `json:"kind"`
	Of        string  `json:"of,omitempty"` // for biases and scales: the kind of their weight
	Rule      string  `json:"rule"`         // how the pair was aligned
	DTypeBase string  `json:"dtype_base"`
	DTypeVLA  string  `json:"dtype_vla"`
	ShapeBase []int64 `json:"shape_base"`
	ShapeVLA  []int64 `json:"shape_vla"`

	FroBase         Num   `json:"fro_base"`
	FroVLA          Num   `json:"fro_vla"`
	FroDelta        Num   `json:"fro_delta"`
	RelDelta        Num   `json:"rel_delta"`
	Cosine          Num   `json:"cosine"`
	MaxAbsDelta     Num   `json:"max_abs_delta"`
	MeanAbsDelta    Num   `json:"mean_abs_delta"`
	ChangedFraction Num   `json:"changed_fraction"`
	Compared        int64 `json:"numel_compared"`
	// Overlap is set when the shapes differ in dim 0 only (a resized vocabulary):
	// the statistics cover the rows both sides have.
	Overlap       bool  `json:"overlap,omitempty"`
	NonFiniteBase int64 `json:"nonfinite_base"`
	NonFiniteVLA  int64 `json:"nonfinite_vla"`
	// Numeric is false for integer, bool and complex tensors: only ChangedFraction is meaningful.
	Numeric bool `json:"numeric"`

	// Per output row (dim 0) and per input column (the remaining dims flattened)
	// L2 norms, for tensors of rank 2 and up. Stored as float32: they feed
	// rankings and pictures, and a 7B model has millions of them.
	RowDelta []float32 `json:"row_delta_norm,omitempty"`
	ColDelta []float32 `json:"col_delta_norm,omitempty"`
	RowBase  []float32 `json:"row_base_norm,omitempty"`
	ColBase  []float32 `json:"col_base_norm,omitempty"`
}

// Mismatch is an aligned pair whose shapes differ beyond dim 0: listed, not compared.
type Mismatch struct {
	Base      string  `json:"base"`
	VLA       string  `json:"vla"`
	ShapeBase []int64 `json:"shape_base"`
	ShapeVLA  []int64 `json:"shape_vla"`
	Compared  bool    `json:"compared"` // true for dim-0-only mismatches, compared on the overlap
	Reason    string  `json:"reason"`
}

// Ambiguity is a tensor that several tensors of the other side could match.
type Ambiguity struct {
	Name       string   `json:"name"`
	Side       string   `json:"side"`
	Candidates []string `json:"candidates"`
}

// Result is a whole analysis.
type Result struct {
	EngineVersion string                   `json:"engine_version"`
	Tensors       []TensorStats            `json:"tensors"`
	BaseOnly      []string                 `json:"base_only"`
	VLAOnly       []string                 `json:"vla_only"`
	Mismatched    []Mismatch               `json:"mismatched"`
	Ambiguous     []Ambiguity              `json:"ambiguous"`
	Units         []UnitScores             `json:"units,omitempty"`
	Geometry      map[string]arch.Geometry `json:"geometry"`
	Warnings      []string                 `json:"warnings"`
	BaseParams    int64                    `json:"base_params"`
	VLAParams     int64                    `json:"vla_params"`
	Compared      int64                    `json:"params_compared"`
	// Content fingerprints of each side (hex SHA-256), when asked for.
	BaseFingerprint string `json:"base_fingerprint,omitempty"`
	VLAFingerprint  string `json:"vla_fingerprint,omitempty"`
	// Global relative ΔW over every compared float tensor: ‖ΔW‖ / ‖W_base‖.
	GlobalRelDelta Num `json:"global_rel_delta"`
	// Exact is set when pairs were subtracted at full precision; otherwise each
	// base value was rounded to its VLA tensor's dtype first.
	Exact bool `json:"exact"`
	// GeometryGuessed lists the components of Geometry that are guesses (no
	// config, no recognised model, no user setting).
	GeometryGuessed []string `json:"geometry_guessed"`
	// Suggestions are --map rules that would pair tensors left unmatched.
	Suggestions []arch.Suggestion `json:"suggestions"`
}

// NoAlignmentError is an analysis in which no tensor pair aligned: there is
// nothing to measure, and a ΔW of 0 would be a lie. It carries what the user
// needs to fix the sources or rules: what likely left each component
// unmatched (arch.ExplainUnmatched) and the rules that would pair tensors.
type NoAlignmentError struct {
	BaseTensors, VLATensors, Mismatched int
	Suggestions                         []arch.Suggestion
	Unmatched                           []arch.UnmatchedGroup
}

// Error is one line: the counts, then each reason (arch.UnmatchedReasons),
// then the suggested rules the reasons did not name.
func (e *NoAlignmentError) Error() string {
	msg := fmt.Sprintf("no tensor aligned between the base (%d tensors) and the VLA (%d tensors)", e.BaseTensors, e.VLATensors)
	if e.Mismatched > 0 {
		msg += fmt.Sprintf("; %d pairs matched by name have different shapes", e.Mismatched)
	}
	for _, r := range arch.UnmatchedReasons(e.Unmatched) {
		msg += "; " + r
	}
	named := map[string]bool{}
	for _, g := range e.Unmatched {
		named[g.Rule] = true
	}
	var try []arch.Suggestion
	for _, s := range e.Suggestions {
		if !named[s.Rule] {
			try = append(try, s)
		}
	}
	if len(try) == 0 {
		if len(e.Suggestions) == 0 {
			msg += "; check the sources and their PREFIX= or add --map rules"
		}
		return msg
	}
	msg += "; try"
	for i, s := range try {
		if i > 0 {
			msg += " or"
		}
		msg += fmt.Sprintf(" --map '%s' (pairs %d)", s.Rule, s.Pairs)
	}
	return msg
}
