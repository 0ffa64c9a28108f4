package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
)

// previewResponse is the alignment an analysis of the request would make
// (analysis.PreviewAlignment, the Result's own types and words).
type previewResponse struct {
	*analysis.Preview
	// Suggestions are --map rules that would pair what stays unmatched;
	// Geometry is every component's attention geometry as the analysis would
	// take it (the request's geometry applied), guesses marked.
	Suggestions      []arch.Suggestion            `json:"suggestions"`
	Geometry         []analysis.ComponentGeometry `json:"geometry"`
	GeometryWarnings []string                     `json:"geometry_warnings"`
}

// apiPreview shows how two sides would align, from their headers alone, so
// the user can fix prefixes and rules before spending minutes on an analysis.
func (s *Server) apiPreview(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeAnalysisRequest(w, r)
	if !ok {
		return
	}
	if resp, ok := s.preview(w, r, req); ok {
		writeJSON(w, http.StatusOK, resp) // the preview slot is given back
	}
}

// preview opens, aligns and suggests inside one preview slot, answering an
// error itself.
func (s *Server) preview(w http.ResponseWriter, r *http.Request, req createAnalysisRequest) (*previewResponse, bool) {
	base, vla, done, ok := s.openRequestSides(w, r, req)
	if !ok {
		return nil, false
	}
	defer done()
	p, err := analysis.PreviewAlignment(base, vla, req.Map)
	if err != nil { // the rules were checked by decodeAnalysisRequest
		badRequest(w, err.Error())
		return nil, false
	}
	resp := &previewResponse{Preview: p}
	if resp.Suggestions, err = analysis.SuggestMaps(base, vla, req.Map); err != nil {
		badRequest(w, err.Error())
		return nil, false
	}
	resp.Geometry, resp.GeometryWarnings = analysis.PairGeometry(base, vla, req.Geometry)
	return resp, true
}
