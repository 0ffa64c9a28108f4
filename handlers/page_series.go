package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// pageSeriesList lists the series and holds the form that creates one.
func (s *Server) pageSeriesList(w http.ResponseWriter, r *http.Request) {
	s.renderSeriesList(w, r, http.StatusOK, web.SeriesForm{}, "")
}

func (s *Server) renderSeriesList(w http.ResponseWriter, r *http.Request, code int, form web.SeriesForm, msg string) {
	list, err := s.db.ListSeries(r.Context(), 200)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, code, web.SeriesListView(list, form, msg, isEditor(r)))
}

// pageSeriesCreate is the form (no JavaScript needed): the base and the
// checkpoints one source per line ("STEP SRC", or SRC named like
// checkpoint-1000), or a folder of checkpoints. Errors come back on the form
// with what was typed.
func (s *Server) pageSeriesCreate(w http.ResponseWriter, r *http.Request) {
	form := web.SeriesForm{Name: r.FormValue("name"), Base: r.FormValue("base"), Checkpoints: r.FormValue("checkpoints"),
		Folder: r.FormValue("folder"), Exact: r.FormValue("exact") != ""}
	req := createSeriesRequest{Name: form.Name, Base: lines(form.Base), Folder: strings.TrimSpace(form.Folder), Exact: form.Exact}
	for _, l := range lines(form.Checkpoints) {
		cp := seriesCheckpoint{VLA: []string{l}}
		if first, rest, ok := strings.Cut(l, " "); ok {
			if n, err := strconv.ParseInt(first, 10, 64); err == nil {
				cp = seriesCheckpoint{Step: &n, VLA: []string{strings.TrimSpace(rest)}}
			}
		}
		req.Checkpoints = append(req.Checkpoints, cp)
	}
	series, serr := s.createSeries(r, req)
	if serr != nil {
		code, msg := serr.code, serr.msg
		if serr.err != nil {
			code, msg = formErrorStatus(serr.err)
			if code == http.StatusInternalServerError {
				s.log.Error("create series", "err", serr.err, "request_id", requestID(r))
			}
		}
		s.renderSeriesList(w, r, code, form, msg)
		return
	}
	http.Redirect(w, r, web.SeriesURL(series.ID, nil), http.StatusSeeOther)
}

// lines splits a textarea into its non-empty trimmed lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// pageSeries is one training run; while its analyses run, the page's section
// refreshes itself.
func (s *Server) pageSeries(w http.ResponseWriter, r *http.Request) {
	v, tensors, err := s.seriesData(r, chi.URLParam(r, "id"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	steps := make([]web.SeriesStepData, len(v.Steps))
	for i, st := range v.Steps {
		steps[i] = web.SeriesStepData{SeriesStep: st.SeriesStep, Status: st.Status, DriftStatus: st.DriftStatus, Progress: st.Progress,
			Tensors: tensors[st.AnalysisID], Drift: tensors[st.DriftID]}
	}
	p := web.BuildSeries(v.Series, steps, r.URL.Query())
	if wantsTable(r) {
		writeTable(w, r, "series-"+v.ID, []web.Table{p.Steps})
		return
	}
	s.render(w, r, http.StatusOK, web.SeriesView(p))
}

// formErrorStatus is apiError's mapping for a form: the status and the message
// to show beside what was typed.
func formErrorStatus(err error) (int, string) {
	var te *tensor.Error
	switch {
	case errors.Is(err, checkpoint.ErrBusy):
		return http.StatusTooManyRequests, err.Error()
	case errors.As(err, &te) && te.Forbidden:
		return http.StatusForbidden, te.Error()
	case errors.As(err, &te), errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, err.Error()
	}
	return http.StatusInternalServerError, "internal error; see the server log"
}
