package handlers

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/store"
)

// apiAnalysisTensors lists per-tensor statistics, the objects of `analyze
// --json`, filterable by component, kind and layer; rows=1 adds the per-row and
// per-column norms. Unfiltered, the alignment lists come along.
func (s *Server) apiAnalysisTensors(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.TensorFilter{Component: q.Get("component"), Kind: q.Get("kind"), WithArrays: q.Get("rows") == "1" || q.Get("rows") == "true"}
	if v := q.Get("layer"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			badRequest(w, "layer must be a number")
			return
		}
		f.Layer = &n
	}
	id := chi.URLParam(r, "id")
	if f.WithArrays {
		s.streamTensors(w, r, id, f, f.Component == "" && f.Kind == "" && f.Layer == nil)
		return
	}
	ts, err := s.db.Tensors(r.Context(), id, f)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if ts == nil {
		ts = []analysis.TensorStats{}
	}
	body := map[string]any{"tensors": ts}
	if f.Component == "" && f.Kind == "" && f.Layer == nil {
		res, err := s.db.Alignment(r.Context(), id)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		body["base_only"], body["vla_only"], body["mismatched"], body["ambiguous"] = res.BaseOnly, res.VLAOnly, res.Mismatched, res.Ambiguous
	}
	writeJSON(w, http.StatusOK, body)
}
