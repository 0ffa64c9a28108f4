package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
)

type previewMismatch struct {
	Base      string  `json:"base"`
	VLA       string  `json:"vla"`
	ShapeBase []int64 `json:"shape_base"`
	ShapeVLA  []int64 `json:"shape_vla"`
	Compared  bool    `json:"compared"`
	Reason    string  `json:"reason"`
}

type previewResponse struct {
	BaseTensors int               `json:"base_tensors"`
	VLATensors  int               `json:"vla_tensors"`
	Aligned     int               `json:"aligned"`
	BaseOnly    []string          `json:"base_only"`
	VLAOnly     []string          `json:"vla_only"`
	Mismatched  []previewMismatch `json:"mismatched"`
	Ambiguous   []arch.Ambiguity  `json:"ambiguous"`
	PairsByRule map[string]int    `json:"pairs_by_rule"`
}

// apiPreview shows how two sides would align, from their headers alone, so
// the user can fix prefixes and rules before spending minutes on an analysis.
func (s *Server) apiPreview(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeAnalysisRequest(w, r)
	if !ok {
		return
	}
	base, vla, ok := s.openRequestSides(w, r, req)
	if !ok {
		return
	}
	defer base.Close()
	defer vla.Close()
	rules := make([]arch.MapRule, 0, len(req.Map))
	for _, m := range req.Map {
		rule, _ := arch.ParseMapRule(m) // checked by decodeAnalysisRequest
		rules = append(rules, rule)
	}
	bn, vn := namedOf(base), namedOf(vla)
	al := arch.Align(bn, vn, rules)
	resp := previewResponse{BaseTensors: len(bn), VLATensors: len(vn), Aligned: len(al.Pairs),
		BaseOnly: []string{}, VLAOnly: []string{}, Mismatched: []previewMismatch{}, Ambiguous: al.Ambiguous, PairsByRule: map[string]int{}}
	if resp.Ambiguous == nil {
		resp.Ambiguous = []arch.Ambiguity{}
	}
	for _, p := range al.Pairs {
		resp.PairsByRule[p.Rule]++
		if p.Overlap {
			resp.Mismatched = append(resp.Mismatched, previewMismatch{Base: bn[p.Base].Name, VLA: vn[p.VLA].Name,
				ShapeBase: bn[p.Base].Shape, ShapeVLA: vn[p.VLA].Shape, Compared: true, Reason: "dim 0 differs: compared on the overlap"})
		}
	}
	for _, m := range al.Mismatched {
		resp.Mismatched = append(resp.Mismatched, previewMismatch{Base: bn[m.Base].Name, VLA: vn[m.VLA].Name,
			ShapeBase: bn[m.Base].Shape, ShapeVLA: vn[m.VLA].Shape, Reason: m.Reason})
	}
	for _, i := range al.BaseOnly {
		resp.BaseOnly = append(resp.BaseOnly, bn[i].Name)
	}
	for _, i := range al.VLAOnly {
		resp.VLAOnly = append(resp.VLAOnly, vn[i].Name)
	}
	writeJSON(w, http.StatusOK, resp)
}

func namedOf(side *checkpoint.Side) []arch.Named {
	out := make([]arch.Named, len(side.Tensors))
	for i, t := range side.Tensors {
		out[i] = arch.Named{Name: t.Name, Shape: t.Shape}
	}
	return out
}
