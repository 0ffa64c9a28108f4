package handlers

import (
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// origins says where each side of a came from: its request, and for a done
// analysis what was recorded when it was read (pinned commits, ETags).
func (s *Server) origins(r *http.Request, a *store.Analysis) (web.Origins, error) {
	var rec store.AnalysisSources
	if a.Status == store.StatusDone {
		recs, err := s.db.Sources(r.Context(), []string{a.ID}, true)
		if err != nil {
			return web.Origins{}, err
		}
		rec = recs[a.ID]
	}
	return s.buildOrigins(a, rec), nil
}

// buildOrigins is web.BuildOrigins with this server's upload places.
func (s *Server) buildOrigins(a *store.Analysis, rec store.AnalysisSources) web.Origins {
	return web.BuildOrigins(a, rec, s.cfg.UploadDir, s.cfg.UploadStore)
}

// pageAnalysis is the job page while an analysis is not done, its overview
// once it is. The query is the overview's state (web.ParseOverviewState).
func (s *Server) pageAnalysis(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a, err := s.db.Get(ctx, chi.URLParam(r, "id"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if a.Status != store.StatusDone {
		if wantsTable(r) {
			conflict(w, "analysis "+a.ID+" is "+string(a.Status)+": no tables yet")
			return
		}
		// Not read yet: the origins come from the request alone.
		j := web.NewJobView(a, time.Now())
		origins := s.buildOrigins(a, store.AnalysisSources{})
		j.Origins = &origins
		s.render(w, r, http.StatusOK, web.JobPage(a, j))
		return
	}
	st := web.ParseOverviewState(r.URL.Query())
	in := web.OverviewInput{Analysis: a}
	if in.Tensors, err = s.db.Tensors(ctx, a.ID, store.TensorFilter{}); err != nil {
		s.pageError(w, r, err)
		return
	}
	if in.Alignment, err = s.db.Alignment(ctx, a.ID); err != nil {
		s.pageError(w, r, err)
		return
	}
	if st.Tab == web.TabUnits {
		if in.Units, err = s.db.Units(ctx, a.ID, store.UnitFilter{}); err != nil {
			s.pageError(w, r, err)
			return
		}
	}
	o := web.BuildOverview(in, st)
	if wantsTable(r) {
		writeTable(w, r, a.ID, o.Tables())
		return
	}
	thread, err := s.overviewThread(r, a.ID, in.Tensors, o.State)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	o.Comments = &thread
	origins, err := s.origins(r, a)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	o.Origins = &origins
	s.render(w, r, http.StatusOK, web.OverviewPage(o))
}
