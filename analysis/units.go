package analysis

import (
	"fmt"
	"sort"
	"strings"

	"github.com/deltascope/deltascope/analysis/arch"
)

// Unit kinds: the structures a pruning mask removes whole.
const (
	UnitFFN  = "ffn_channel"
	UnitHead = "attn_head"
)

// Metric says how one slice's divergence is measured.
type Metric string

const (
	// Relative is ‖ΔW_slice‖ / (‖W_base,slice‖ + 1e-8).
	Relative Metric = "relative"
	// Absolute is ‖ΔW_slice‖.
	Absolute Metric = "absolute"
)

// Variant says how the slices of one unit combine into its score (DESIGN.md,
// "Units and scores").
type Variant string

const (
	// OpenVLA: FFN channel = gate + up + down-column; head = mean of its q rows.
	OpenVLA Variant = "openvla"
	// Pi05: FFN channel = gate row (fc1 row in a vision encoder); LLM head = (mean
	// q rows + mean k rows of its group) / 2; vision (SigLIP) head = mean q rows,
	// as the authors' π0.5 code scores them (it reads only q_proj for SigLIP).
	Pi05 Variant = "pi05"
	// Mean: the mean over every slice the unit owns.
	Mean Variant = "mean"
)

// Scoring picks a metric and a variant; empty fields mean the family default:
// π0.5-like models (an action expert, PaliGemma names) score as the authors'
// π0.5 code does (absolute, pi05), everything else as their OpenVLA code
// (relative, openvla).
type Scoring struct {
	Metric  Metric  `json:"metric"`
	Variant Variant `json:"variant"`
}

// ScoreDefault asks for the family default.
var ScoreDefault = Scoring{}

// UnitScores are the scores of every unit of one kind in one layer of one component.
type UnitScores struct {
	Component string    `json:"component"`
	Kind      string    `json:"kind"`
	Layer     int       `json:"layer"`
	Metric    Metric    `json:"metric"`
	Variant   Variant   `json:"variant"`
	Scores    []float32 `json:"scores"`
}

const eps = 1e-8

// resolve fills the family default into s.
func (s Scoring) resolve(res *Result) Scoring {
	pi := false
	for i := range res.Tensors {
		pi = pi || res.Tensors[i].Component == "action_expert"
	}
	// The expert has no base, so it usually shows up among the VLA-only tensors.
	for _, n := range res.VLAOnly {
		pi = pi || arch.Classify(n, nil).Component == "action_expert"
	}
	if s.Variant == "" {
		s.Variant = OpenVLA
		if pi {
			s.Variant = Pi05
		}
	}
	if s.Metric == "" {
		s.Metric = Relative
		if pi {
			s.Metric = Absolute
		}
	}
	return s
}

type layerKey struct {
	component string
	layer     int
}

// BuildUnits scores every FFN channel and attention head the result has the
// tensors for. Components without a known attention geometry get FFN units only
// and a warning.
func BuildUnits(res *Result, sc Scoring) ([]UnitScores, []string) {
	sc = sc.resolve(res)
	layers := map[layerKey]map[string]*TensorStats{}
	for i := range res.Tensors {
		t := &res.Tensors[i]
		if t.Layer < 0 || t.RowDelta == nil {
			continue
		}
		k := layerKey{t.Component, t.Layer}
		if layers[k] == nil {
			layers[k] = map[string]*TensorStats{}
		}
		layers[k][t.Kind] = t
	}
	keys := make([]layerKey, 0, len(layers))
	for k := range layers {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].component != keys[b].component {
			return keys[a].component < keys[b].component
		}
		return keys[a].layer < keys[b].layer
	})
	var out []UnitScores
	var warnings []string
	warned := map[string]bool{}
	for _, k := range keys {
		m := layers[k]
		if s := ffnScores(m, sc); s != nil {
			out = append(out, UnitScores{Component: k.component, Kind: UnitFFN, Layer: k.layer, Metric: sc.Metric, Variant: sc.Variant, Scores: s})
		}
		g, ok := res.Geometry[k.component]
		hasAttn := m["attn_q"] != nil || m["attn_qkv"] != nil
		if !hasAttn {
			continue
		}
		if !ok || g.Heads <= 0 || g.HeadDim <= 0 {
			if !warned[k.component] {
				warnings = append(warnings, fmt.Sprintf("%s: attention geometry unknown, no head scores (set its heads)", k.component))
				warned[k.component] = true
			}
			continue
		}
		s, err := headScores(m, g.Heads, max(g.KVHeads, 1), g.HeadDim, sc, strings.HasPrefix(k.component, "vision."))
		if err != nil {
			if !warned[k.component+err.Error()] {
				warnings = append(warnings, fmt.Sprintf("%s layer %d: %v", k.component, k.layer, err))
				warned[k.component+err.Error()] = true
			}
			continue
		}
		out = append(out, UnitScores{Component: k.component, Kind: UnitHead, Layer: k.layer, Metric: sc.Metric, Variant: sc.Variant, Scores: s})
	}
	return out, warnings
}

// slice returns the divergence of slice i of a row- or column-norm array.
func slice(delta, base []float32, i int, m Metric) float64 {
	if m == Absolute {
		return float64(delta[i])
	}
	return float64(delta[i]) / (float64(base[i]) + eps)
}

func ffnScores(m map[string]*TensorStats, sc Scoring) []float32 {
	if gate, up, down := m["ffn_gate"], m["ffn_up"], m["ffn_down"]; gate != nil {
		n := len(gate.RowDelta)
		out := make([]float32, n)
		for j := range n {
			g := slice(gate.RowDelta, gate.RowBase, j, sc.Metric)
			var s float64
			switch {
			case sc.Variant == Pi05 || up == nil || down == nil || len(up.RowDelta) != n || len(down.ColDelta) != n:
				s = g
			case sc.Variant == Mean:
				s = (g + slice(up.RowDelta, up.RowBase, j, sc.Metric) + slice(down.ColDelta, down.ColBase, j, sc.Metric)) / 3
			default:
				s = g + slice(up.RowDelta, up.RowBase, j, sc.Metric) + slice(down.ColDelta, down.ColBase, j, sc.Metric)
			}
			out[j] = float32(s)
		}
		return out
	}
	if fc1, fc2 := m["ffn_fc1"], m["ffn_fc2"]; fc1 != nil {
		n := len(fc1.RowDelta)
		out := make([]float32, n)
		for j := range n {
			s := slice(fc1.RowDelta, fc1.RowBase, j, sc.Metric)
			if sc.Variant == Mean && fc2 != nil && len(fc2.ColDelta) == n {
				s = (s + slice(fc2.ColDelta, fc2.ColBase, j, sc.Metric)) / 2
			}
			out[j] = float32(s)
		}
		return out
	}
	return nil
}

// meanRows is the mean slice divergence of rows [lo, hi) of t.
func meanRows(t *TensorStats, lo, hi int, m Metric) float64 {
	var s float64
	for i := lo; i < hi; i++ {
		s += slice(t.RowDelta, t.RowBase, i, m)
	}
	return s / float64(hi-lo)
}

func meanCols(t *TensorStats, lo, hi int, m Metric) float64 {
	var s float64
	for i := lo; i < hi; i++ {
		s += slice(t.ColDelta, t.ColBase, i, m)
	}
	return s / float64(hi-lo)
}

// headScores scores every head of one layer. vision marks a vision encoder,
// whose π0.5 rule has no k-term: the authors' k-term belongs to the Gemma LLM's
// GQA, and SigLIP (as many KV heads as heads) is scored by its q rows alone.
func headScores(m map[string]*TensorStats, heads, kvHeads, d int, sc Scoring, vision bool) ([]float32, error) {
	if heads%kvHeads != 0 {
		return nil, fmt.Errorf("%d heads do not split into %d KV groups", heads, kvHeads)
	}
	perGroup := heads / kvHeads
	out := make([]float32, heads)
	if qkv := m["attn_qkv"]; qkv != nil {
		// timm fused qkv: rows [q; k; v], each heads×d, no GQA.
		if len(qkv.RowDelta) != 3*heads*d {
			return nil, fmt.Errorf("fused qkv has %d rows, want 3×%d×%d", len(qkv.RowDelta), heads, d)
		}
		proj := m["attn_o"]
		for h := range heads {
			s := 0.0
			for part := range 3 {
				lo := part*heads*d + h*d
				s += meanRows(qkv, lo, lo+d, sc.Metric)
			}
			n := 3.0
			if sc.Variant == Mean && proj != nil && len(proj.ColDelta) == heads*d {
				s += meanCols(proj, h*d, (h+1)*d, sc.Metric)
				n++
			}
			out[h] = float32(s / n)
		}
		return out, nil
	}
	q, k, v, o := m["attn_q"], m["attn_k"], m["attn_v"], m["attn_o"]
	if len(q.RowDelta) != heads*d {
		return nil, fmt.Errorf("q has %d rows, want %d heads × %d", len(q.RowDelta), heads, d)
	}
	kvOK := func(t *TensorStats) bool { return t != nil && len(t.RowDelta) == kvHeads*d }
	for h := range heads {
		g := h / perGroup
		qs := meanRows(q, h*d, (h+1)*d, sc.Metric)
		switch sc.Variant {
		case Pi05:
			if !vision && kvOK(k) {
				qs = (qs + meanRows(k, g*d, (g+1)*d, sc.Metric)) / 2
			}
		case Mean:
			s, n := qs, 1.0
			for _, t := range []*TensorStats{k, v} {
				if kvOK(t) {
					s += meanRows(t, g*d, (g+1)*d, sc.Metric)
					n++
				}
			}
			if o != nil && len(o.ColDelta) == heads*d {
				s += meanCols(o, h*d, (h+1)*d, sc.Metric)
				n++
			}
			qs = s / n
		}
		out[h] = float32(qs)
	}
	return out, nil
}
