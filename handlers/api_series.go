package handlers

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/store"
)

// createSeriesRequest is POST /api/series: one base and the checkpoints of
// one run, each with its step, or a folder whose subfolders are the
// checkpoints (checkpoint-1000/, step_2000/, ...).
type createSeriesRequest struct {
	Name        string             `json:"name"`
	Base        []string           `json:"base"`
	Map         []string           `json:"map"`
	Exact       bool               `json:"exact"`
	Checkpoints []seriesCheckpoint `json:"checkpoints"`
	Folder      string             `json:"folder"`
}

type seriesCheckpoint struct {
	// Step is optional: without it, it is read from the source's name.
	Step *int64   `json:"step"`
	VLA  []string `json:"vla"`
}

// seriesStepsOf resolves the request's checkpoints to (step, sources), in
// step order; the message says what is wrong.
func (s *Server) seriesStepsOf(req *createSeriesRequest) ([]store.SeriesStep, string) {
	cps := req.Checkpoints
	if len(cps) == 0 && req.Folder != "" {
		var msg string
		if cps, msg = s.folderCheckpoints(req.Folder); msg != "" {
			return nil, msg
		}
	}
	if len(cps) == 0 {
		return nil, `give "checkpoints" ([{"step": N, "vla": [SRC...]}...]) or a "folder" of checkpoints`
	}
	if len(cps) > store.MaxSeriesSteps {
		return nil, fmt.Sprintf("%d checkpoints: a series holds at most %d", len(cps), store.MaxSeriesSteps)
	}
	var steps []store.SeriesStep
	for i, c := range cps {
		if len(c.VLA) == 0 {
			return nil, fmt.Sprintf("checkpoint %d has no source", i+1)
		}
		var step int64
		switch {
		case c.Step != nil:
			step = *c.Step
		default:
			n, ok := checkpoint.StepFromPath(c.VLA[0])
			if !ok {
				return nil, fmt.Sprintf("checkpoint %d (%s): give its step, or name it like checkpoint-1000 or step_2000", i+1, c.VLA[0])
			}
			step = n
		}
		if step < 0 {
			return nil, fmt.Sprintf("checkpoint %d: step %d is negative", i+1, step)
		}
		steps = append(steps, store.SeriesStep{Step: step, VLA: s.resolveSpecs(c.VLA)})
	}
	slices.SortStableFunc(steps, func(a, b store.SeriesStep) int { return int(min(max(a.Step-b.Step, -1), 1)) })
	for i := 1; i < len(steps); i++ {
		if steps[i].Step == steps[i-1].Step {
			return nil, fmt.Sprintf("step %d appears twice", steps[i].Step)
		}
	}
	return steps, ""
}

// folderCheckpoints lists the subfolders of a folder under a root whose names
// carry a step.
func (s *Server) folderCheckpoints(folder string) ([]seriesCheckpoint, string) {
	dir := s.resolveSpecs([]string{folder})[0]
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Sprintf("folder %s: %v", folder, err)
	}
	inside := false
	for _, root := range s.cfg.Roots {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(r, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			inside = true
			break
		}
	}
	if !inside {
		return nil, fmt.Sprintf("folder %s is outside the allowed folders", folder)
	}
	entries, err := os.ReadDir(real)
	if err != nil {
		return nil, fmt.Sprintf("folder %s: %v", folder, err)
	}
	var out []seriesCheckpoint
	for _, e := range entries {
		if !e.IsDir() {
			// A link to a checkpoint folder counts as one: opening it then
			// applies the rules every source follows (one that leads out of
			// its folder is refused, with its name), instead of the step
			// silently missing from the series.
			if e.Type()&fs.ModeSymlink == 0 {
				continue
			}
			if fi, err := os.Stat(filepath.Join(real, e.Name())); err != nil || !fi.IsDir() {
				continue
			}
		}
		if n, ok := checkpoint.StepFromPath(e.Name()); ok {
			out = append(out, seriesCheckpoint{Step: &n, VLA: []string{filepath.Join(dir, e.Name())}})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("folder %s holds no checkpoint-N or step_N folder", folder)
	}
	return out, ""
}

// seriesError is why a series could not be created: an HTTP status and a
// message for the API's JSON or the form's page, or an error for apiError.
type seriesError struct {
	code int
	msg  string
	err  error
}

// analysisFor finds the analysis of a pair in the cache or queues it, after
// opening both sides (headers only) so a bad source is refused at once.
func (s *Server) analysisFor(r *http.Request, req createAnalysisRequest) (*store.Analysis, *seriesError) {
	if a, ok := s.findCached(r, req); ok {
		s.stats.cacheHits.Add(1)
		return a, nil
	}
	for _, side := range [][]string{req.Base, req.VLA} {
		sd, err := checkpoint.OpenSide(side, s.openOptions())
		if err != nil {
			return nil, &seriesError{err: err}
		}
		sd.Close()
	}
	s.stats.cacheMisses.Add(1)
	a, err := s.db.CreateLabeled(r.Context(), req.storeRequest(), store.Labels{Name: req.Name})
	if err != nil {
		return nil, &seriesError{err: err}
	}
	return a, nil
}

// createSeries checks a request and queues (or finds in the cache) each
// step's analysis of the base against its checkpoint, and a drift analysis
// of the previous checkpoint against it, then records the series.
func (s *Server) createSeries(r *http.Request, req createSeriesRequest) (*store.Series, *seriesError) {
	if strings.TrimSpace(req.Name) == "" || len(req.Base) == 0 {
		return nil, &seriesError{code: http.StatusBadRequest, msg: `give a "name" and at least one source in "base"`}
	}
	for _, m := range req.Map {
		if _, err := arch.ParseMapRule(m); err != nil {
			return nil, &seriesError{code: http.StatusBadRequest, msg: fmt.Sprintf("map rule %q: %v", m, err)}
		}
	}
	if len(s.cfg.Roots) == 0 {
		return nil, &seriesError{code: http.StatusForbidden, msg: "this server has no --root folders"}
	}
	steps, msg := s.seriesStepsOf(&req)
	if msg != "" {
		return nil, &seriesError{code: http.StatusBadRequest, msg: msg}
	}
	base := s.resolveSpecs(req.Base)
	// Up to two analyses a step: refuse up front rather than half a series.
	if counts, err := s.db.CountByStatus(r.Context()); err == nil && counts[store.StatusQueued]+2*len(steps) > s.guard.g.MaxQueuedAnalyses {
		return nil, &seriesError{code: http.StatusTooManyRequests, msg: fmt.Sprintf("a series of %d checkpoints queues up to %d analyses; %d are waiting already (limit %d)",
			len(steps), 2*len(steps), counts[store.StatusQueued], s.guard.g.MaxQueuedAnalyses)}
	}
	name := strings.TrimSpace(req.Name)
	for i := range steps {
		a, serr := s.analysisFor(r, createAnalysisRequest{Base: base, VLA: steps[i].VLA, Map: req.Map, Exact: req.Exact,
			Name: fmt.Sprintf("%s · step %d", name, steps[i].Step)})
		if serr != nil {
			return nil, serr
		}
		steps[i].AnalysisID = a.ID
		if i == 0 {
			// The first checkpoint's drift is from the base: its own analysis.
			steps[i].DriftID = a.ID
			continue
		}
		// Consecutive checkpoints share names: no alignment rules.
		d, serr := s.analysisFor(r, createAnalysisRequest{Base: steps[i-1].VLA, VLA: steps[i].VLA, Exact: req.Exact,
			Name: fmt.Sprintf("%s · drift %d → %d", name, steps[i-1].Step, steps[i].Step)})
		if serr != nil {
			return nil, serr
		}
		steps[i].DriftID = d.ID
	}
	s.jobs.Wake()
	series, err := s.db.CreateSeries(r.Context(), name, base, req.Map, steps)
	if err != nil {
		return nil, &seriesError{err: err}
	}
	return series, nil
}

// apiSeriesCreate answers POST /api/series with 201 and the series; its
// analyses are reused from the cache when the same files were analysed.
func (s *Server) apiSeriesCreate(w http.ResponseWriter, r *http.Request) {
	var req createSeriesRequest
	if !s.decodeJSON(w, r, &req) {
		return
	}
	series, serr := s.createSeries(r, req)
	if serr != nil {
		if serr.err != nil {
			s.apiError(w, r, serr.err)
			return
		}
		writeJSON(w, serr.code, errorBody{serr.msg})
		return
	}
	w.Header().Set("Location", "/api/series/"+series.ID)
	writeJSON(w, http.StatusCreated, series)
}

// seriesView is GET /api/series/{id}: the series, each step's analyses with
// their state, and once done the relative ΔW (against the base) and the
// relative drift (against the previous checkpoint), whole model and per
// component.
type seriesView struct {
	*store.Series
	Steps []seriesStepView `json:"steps"`
	Done  bool             `json:"done"`
}

type seriesStepView struct {
	store.SeriesStep
	Status      store.Status            `json:"status"`
	DriftStatus store.Status            `json:"drift_status"`
	Progress    float64                 `json:"progress"`
	Delta       map[string]analysis.Num `json:"rel_delta,omitempty"` // "" is the whole model
	Drift       map[string]analysis.Num `json:"rel_drift,omitempty"`
	DriftNorm   map[string]float64      `json:"drift_norm,omitempty"` // ‖W_t − W_{t−1}‖
}

// seriesData loads a series and the statistics of its finished analyses.
func (s *Server) seriesData(r *http.Request, id string) (*seriesView, map[string][]analysis.TensorStats, error) {
	ctx := r.Context()
	sr, err := s.db.GetSeries(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	v := &seriesView{Series: sr, Done: true}
	tensors := map[string][]analysis.TensorStats{}
	load := func(aid string) (*store.Analysis, []analysis.TensorStats, error) {
		a, err := s.db.Get(ctx, aid)
		if err != nil || a.Status != store.StatusDone {
			return a, nil, err
		}
		if ts, ok := tensors[aid]; ok {
			return a, ts, nil
		}
		ts, err := s.db.Tensors(ctx, aid, store.TensorFilter{})
		tensors[aid] = ts
		return a, ts, err
	}
	rels := func(ts []analysis.TensorStats) (map[string]analysis.Num, map[string]float64) {
		rel, abs := map[string]analysis.Num{}, map[string]float64{}
		for c, g := range analysis.ComponentNorms(ts) {
			rel[c], abs[c] = g.Rel(), g.Delta
		}
		return rel, abs
	}
	for _, st := range sr.Steps {
		sv := seriesStepView{SeriesStep: st}
		a, ts, err := load(st.AnalysisID)
		if err != nil {
			return nil, nil, err
		}
		d, dts, err := load(st.DriftID)
		if err != nil {
			return nil, nil, err
		}
		sv.Status, sv.DriftStatus = a.Status, d.Status
		sv.Progress = (a.Progress() + d.Progress()) / 2
		if ts != nil {
			sv.Delta, _ = rels(ts)
		}
		if dts != nil {
			sv.Drift, sv.DriftNorm = rels(dts)
		}
		if a.Status != store.StatusDone || d.Status != store.StatusDone {
			v.Done = false
		}
		v.Steps = append(v.Steps, sv)
	}
	return v, tensors, nil
}

func (s *Server) apiSeriesGet(w http.ResponseWriter, r *http.Request) {
	v, _, err := s.seriesData(r, chi.URLParam(r, "id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) apiSeriesList(w http.ResponseWriter, r *http.Request) {
	list, err := s.db.ListSeries(r.Context(), 200)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}
