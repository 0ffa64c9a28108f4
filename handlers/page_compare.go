package handlers

import (
	"errors"
	"net/http"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// pageCompare shows two done analyses side by side: synchronized heatmaps,
// their difference, and per module the rank correlation and top-k overlap of
// unit scores. Without two analyses it is a picker.
func (s *Server) pageCompare(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st := web.ParseCompareState(r.URL.Query())
	list, err := s.db.List(ctx, homeListLimit)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	choices := web.AnalysisChoices(list)
	in := web.CompareInput{}
	note := ""
	if st.A == "" || st.B == "" {
		note = "Pick two done analyses, for example two VLAs fine-tuned from one base, or one VLA at two training steps."
	} else if in, note, err = s.compareInput(r, st); err != nil {
		s.pageError(w, r, err)
		return
	}
	p := web.BuildCompare(in, st, choices, note)
	if in.A != nil && in.B != nil {
		// One query for both sides' places.
		recs, err := s.db.Sources(r.Context(), []string{in.A.ID, in.B.ID}, true)
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		oa, ob := s.buildOrigins(in.A, recs[in.A.ID]), s.buildOrigins(in.B, recs[in.B.ID])
		p.OriginsA, p.OriginsB = &oa, &ob
	}
	if wantsTable(r) {
		if in.A == nil {
			notFound(w, note)
			return
		}
		writeTable(w, r, "compare-"+st.A+"-"+st.B, []web.Table{p.Modules})
		return
	}
	s.render(w, r, http.StatusOK, web.AnalysesCompareView(p))
}

// compareInput reads both analyses; a missing or unfinished one is a note
// for the picker, not an error page, so the user can pick again.
func (s *Server) compareInput(r *http.Request, st web.CompareState) (web.CompareInput, string, error) {
	ctx := r.Context()
	var in web.CompareInput
	for i, id := range []string{st.A, st.B} {
		a, err := s.db.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return web.CompareInput{}, "There is no analysis " + id + ".", nil
		}
		if err != nil {
			return web.CompareInput{}, "", err
		}
		if a.Status != store.StatusDone {
			return web.CompareInput{}, "Analysis " + id + " is " + string(a.Status) + ": only done analyses can be compared.", nil
		}
		ts, err := s.db.Tensors(ctx, id, store.TensorFilter{})
		if err != nil {
			return web.CompareInput{}, "", err
		}
		us, err := s.db.Units(ctx, id, store.UnitFilter{})
		if err != nil {
			return web.CompareInput{}, "", err
		}
		if i == 0 {
			in.A, in.TA, in.UA = a, ts, us
		} else {
			in.B, in.TB, in.UB = a, ts, us
		}
	}
	return in, "", nil
}
