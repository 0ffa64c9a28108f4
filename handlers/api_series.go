package handlers

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/jobs"
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

// seriesOf resolves a request against the roots: the base, and each
// checkpoint with its step (given, or read from the source's name, or the
// folder's subfolders). A refusal is a statusError; the rest (the name, the
// rules, the steps' order) jobs.CreateSeries checks.
func (s *Server) seriesOf(req *createSeriesRequest) (jobs.NewSeries, error) {
	ns := jobs.NewSeries{Name: req.Name, Base: s.resolveSpecs(req.Base), Map: req.Map, Exact: req.Exact}
	if len(s.cfg.Roots) == 0 {
		return ns, &statusError{http.StatusForbidden, "this server has no --root folders"}
	}
	cps := req.Checkpoints
	if len(cps) == 0 && req.Folder != "" {
		var msg string
		if cps, msg = s.folderCheckpoints(req.Folder); msg != "" {
			return ns, &statusError{http.StatusBadRequest, msg}
		}
	}
	if len(cps) == 0 {
		return ns, &statusError{http.StatusBadRequest, `give "checkpoints" ([{"step": N, "vla": [SRC...]}...]) or a "folder" of checkpoints`}
	}
	if len(cps) > store.MaxSeriesSteps {
		return ns, &statusError{http.StatusBadRequest, fmt.Sprintf("%d checkpoints: a series holds at most %d", len(cps), store.MaxSeriesSteps)}
	}
	for i, c := range cps {
		if len(c.VLA) == 0 {
			return ns, &statusError{http.StatusBadRequest, fmt.Sprintf("checkpoint %d has no source", i+1)}
		}
		var step int64
		switch {
		case c.Step != nil:
			step = *c.Step
		default:
			n, ok := checkpoint.StepFromPath(c.VLA[0])
			if !ok {
				return ns, &statusError{http.StatusBadRequest, fmt.Sprintf("checkpoint %d (%s): give its step, or name it like checkpoint-1000 or step_2000", i+1, c.VLA[0])}
			}
			step = n
		}
		if step < 0 {
			return ns, &statusError{http.StatusBadRequest, fmt.Sprintf("checkpoint %d: step %d is negative", i+1, step)}
		}
		ns.Steps = append(ns.Steps, store.SeriesStep{Step: step, VLA: s.resolveSpecs(c.VLA)})
	}
	return ns, nil
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

// createSeries resolves a request and queues (or finds in the cache) its
// series' analyses (jobs.CreateSeries); errors are for errorStatus.
func (s *Server) createSeries(r *http.Request, req createSeriesRequest) (*store.Series, error) {
	ns, err := s.seriesOf(&req)
	if err != nil {
		return nil, err
	}
	series, counts, err := s.jobs.CreateSeries(r.Context(), ns, jobs.SeriesOptions{Open: s.openOptions(), MaxQueued: s.guard.g.MaxQueuedAnalyses})
	s.stats.cacheHits.Add(int64(counts.Hits))
	s.stats.cacheMisses.Add(int64(counts.Misses))
	return series, err
}

// apiSeriesCreate answers POST /api/series with 201 and the series; its
// analyses are reused from the cache when the same files were analysed.
func (s *Server) apiSeriesCreate(w http.ResponseWriter, r *http.Request) {
	var req createSeriesRequest
	if !s.decodeJSON(w, r, &req) {
		return
	}
	series, err := s.createSeries(r, req)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/series/"+series.ID)
	writeJSON(w, http.StatusCreated, series)
}

// apiSeriesGet is GET /api/series/{id}: jobs.SeriesView.
func (s *Server) apiSeriesGet(w http.ResponseWriter, r *http.Request) {
	v, _, err := jobs.LoadSeries(r.Context(), s.db, chi.URLParam(r, "id"))
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
