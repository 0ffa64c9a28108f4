package handlers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/jobs"
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
	series, err := s.createSeries(r, req)
	if err != nil {
		code, msg := errorStatus(err)
		s.logFailure(r, code, err)
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
	v, tensors, err := jobs.LoadSeries(r.Context(), s.db, chi.URLParam(r, "id"))
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	steps := make([]web.SeriesStepData, len(v.Steps))
	for i, st := range v.Steps {
		steps[i] = web.SeriesStepData{SeriesStep: st.SeriesStep, Name: st.Name, Status: st.Status, DriftStatus: st.DriftStatus, Progress: st.Progress,
			Tensors: tensors[st.AnalysisID], Delta: st.Delta, Drift: st.Drift}
	}
	p := web.BuildSeries(v.Series, steps, r.URL.Query())
	if wantsTable(r) {
		writeTable(w, r, "series-"+v.ID, []web.Table{p.Steps})
		return
	}
	s.render(w, r, http.StatusOK, web.SeriesView(p))
}
