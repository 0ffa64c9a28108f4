package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
	"github.com/deltascope/deltascope/web/viz"
)

// pageSpectrum is the spectrum tab of a done analysis: the start form, the
// running job, or the heatmaps. ?rank=K picks a job; without it the latest.
func (s *Server) pageSpectrum(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := chi.URLParam(r, "id")
	a, err := s.db.Get(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if a.Status != store.StatusDone {
		http.Redirect(w, r, web.AnalysisURL(id), http.StatusSeeOther)
		return
	}
	var job *store.Spectrum
	if k, err := strconv.Atoi(r.URL.Query().Get("rank")); err == nil && k >= 1 && k <= spectral.MaxRank {
		job, err = s.db.SpectrumOf(ctx, id, k, true)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.pageError(w, r, err)
			return
		}
	} else {
		job, err = s.db.LatestSpectrum(ctx, id, true)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.pageError(w, r, err)
			return
		}
	}
	p := web.BuildSpectrum(a, job, r.URL.Query(), isEditor(r))
	if wantsTable(r) {
		writeTable(w, r, id+"-spectrum", []web.Table{p.Summary})
		return
	}
	s.render(w, r, http.StatusOK, web.SpectrumView(p))
}

// pageSpectrumStart is the start form (it works without JavaScript): queue
// the job, then back to the tab, which follows it.
func (s *Server) pageSpectrumStart(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	rank := spectral.DefaultRank
	if v := r.FormValue("rank"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil {
			s.pageError(w, r, &store.Error{Code: store.EINVALID, Message: "rank: give a whole number from 1 to " + strconv.Itoa(spectral.MaxRank)})
			return
		}
		rank = k
	}
	sp, err := s.jobs.QueueSpectrum(r.Context(), id, rank)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, web.SpectrumURL(id, url.Values{"rank": {strconv.Itoa(sp.Rank)}}), http.StatusSeeOther)
}

// pageSpectrumCancel is the cancel form of a running spectral job.
func (s *Server) pageSpectrumCancel(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	rank, err := strconv.Atoi(r.URL.Query().Get("rank"))
	if err != nil {
		rank = spectral.DefaultRank
	}
	if err := s.jobs.CancelSpectrum(r.Context(), id, rank); err != nil && !errors.Is(err, store.ErrConflict) {
		s.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, web.SpectrumURL(id, url.Values{"rank": {strconv.Itoa(rank)}}), http.StatusSeeOther)
}

// tensorSpectrumCharts are the spectrum curves of one tensor when the
// analysis has a finished spectrum (none otherwise: the tensor page does not
// start jobs).
func (s *Server) tensorSpectrumCharts(r *http.Request, id, name string) []viz.Chart {
	sp, err := s.db.LatestSpectrum(r.Context(), id, true)
	if err != nil || sp.Result == nil {
		return nil
	}
	return web.TensorSpectrumCharts(sp.Result, name)
}
