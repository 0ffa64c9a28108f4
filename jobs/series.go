package jobs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/store"
)

// NewSeries is a training run to analyse: a base and the checkpoints of one
// fine-tune, each with its step. Sources are as the runner will open them
// (paths already resolved against the roots).
type NewSeries struct {
	Name  string
	Base  []string
	Map   []string
	Exact bool
	// Steps need Step and VLA; they may come in any order.
	Steps []store.SeriesStep
}

// SeriesOptions say how CreateSeries opens sources and how much it may queue.
type SeriesOptions struct {
	// Open opens each side (headers only) before its analysis is queued, so a
	// bad source is refused at once; its Context is set by CreateSeries.
	Open checkpoint.Options
	// MaxQueued bounds the analyses waiting in the queue, this series' included.
	MaxQueued int
}

// CacheCounts say how many analyses a request found in the cache and how many
// it queued.
type CacheCounts struct {
	Hits, Misses int
}

// ErrQueueFull is in the chain of an error that refuses work because the
// queue holds too many analyses already: the request may be repeated later.
var ErrQueueFull = &QueueFullError{}

// QueueFullError says how full the queue is; its message can be shown as is.
type QueueFullError struct{ msg string }

func (e *QueueFullError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrQueueFull) true whatever the message.
func (e *QueueFullError) Is(target error) bool {
	_, ok := target.(*QueueFullError)
	return ok
}

func invalid(format string, args ...any) error {
	return &store.Error{Code: store.EINVALID, Message: fmt.Sprintf(format, args...)}
}

// CreateSeries checks a series and queues (or finds in the cache) each step's
// analysis of the base against its checkpoint, and a drift analysis of the
// previous checkpoint against it (the first step's drift is its own analysis:
// the previous weights are the base's), then records the series. A bad
// request is a store.ErrInvalid error, a full queue ErrQueueFull, a bad
// source the checkpoint's error; nothing is queued past the first failure.
func (r *Runner) CreateSeries(ctx context.Context, ns NewSeries, opt SeriesOptions) (*store.Series, CacheCounts, error) {
	var counts CacheCounts
	name := strings.TrimSpace(ns.Name)
	if name == "" || len(ns.Base) == 0 {
		return nil, counts, invalid(`give a "name" and at least one source in "base"`)
	}
	for _, m := range ns.Map {
		if _, err := arch.ParseMapRule(m); err != nil {
			return nil, counts, invalid("map rule %q: %v", m, err)
		}
	}
	steps, err := seriesSteps(ns.Steps)
	if err != nil {
		return nil, counts, err
	}
	// Up to two analyses a step: refuse up front rather than half a series.
	if queued, err := r.db.CountByStatus(ctx); err == nil && queued[store.StatusQueued]+2*len(steps) > opt.MaxQueued {
		return nil, counts, &QueueFullError{fmt.Sprintf("a series of %d checkpoints queues up to %d analyses; %d are waiting already (limit %d)",
			len(steps), 2*len(steps), queued[store.StatusQueued], opt.MaxQueued)}
	}
	opt.Open.Context = ctx // remote sources: a client that leaves stops the reads
	// A checkpoint is a side of up to three analyses (its step's, the drift
	// into it, the drift out of it) and the base of every step's: each side's
	// headers are read once.
	opened := map[string]bool{}
	analysisFor := func(req store.AnalysisRequest, label string) (string, error) {
		if a, ok := FindCached(ctx, r.db, opt.Open, req); ok {
			counts.Hits++
			return a.ID, nil
		}
		for _, side := range [][]string{req.Base, req.VLA} {
			key := strings.Join(side, "\x00")
			if opened[key] {
				continue
			}
			sd, err := checkpoint.OpenSide(side, opt.Open)
			if err != nil {
				return "", err
			}
			sd.Close()
			opened[key] = true
		}
		counts.Misses++
		a, err := r.db.CreateLabeled(ctx, req, store.Labels{Name: label})
		if err != nil {
			return "", err
		}
		return a.ID, nil
	}
	for i := range steps {
		id, err := analysisFor(store.AnalysisRequest{Base: ns.Base, VLA: steps[i].VLA, Map: ns.Map, Exact: ns.Exact},
			fmt.Sprintf("%s · step %d", name, steps[i].Step))
		if err != nil {
			return nil, counts, err
		}
		steps[i].AnalysisID = id
		if i == 0 {
			steps[i].DriftID = id
			continue
		}
		// Consecutive checkpoints share names: no alignment rules.
		if steps[i].DriftID, err = analysisFor(store.AnalysisRequest{Base: steps[i-1].VLA, VLA: steps[i].VLA, Exact: ns.Exact},
			fmt.Sprintf("%s · drift %d → %d", name, steps[i-1].Step, steps[i].Step)); err != nil {
			return nil, counts, err
		}
	}
	r.Wake()
	series, err := r.db.CreateSeries(ctx, name, ns.Base, ns.Map, steps)
	return series, counts, err
}

// seriesSteps checks a series' checkpoints and returns a copy in step order.
func seriesSteps(in []store.SeriesStep) ([]store.SeriesStep, error) {
	switch {
	case len(in) == 0:
		return nil, invalid("a series needs at least one checkpoint")
	case len(in) > store.MaxSeriesSteps:
		return nil, invalid("%d checkpoints: a series holds at most %d", len(in), store.MaxSeriesSteps)
	}
	steps := slices.Clone(in)
	for _, st := range steps {
		switch {
		case len(st.VLA) == 0:
			return nil, invalid("step %d has no source", st.Step)
		case st.Step < 0:
			return nil, invalid("step %d is negative", st.Step)
		}
	}
	slices.SortStableFunc(steps, func(a, b store.SeriesStep) int { return int(min(max(a.Step-b.Step, -1), 1)) })
	for i := 1; i < len(steps); i++ {
		if steps[i].Step == steps[i-1].Step {
			return nil, invalid("step %d appears twice", steps[i].Step)
		}
	}
	return steps, nil
}

// FindCached looks a request's files up in the cache by their quick identity
// alone, without parsing a header: a repeated request costs a few stats. Any
// problem (a missing file, a path outside the roots) is left for the full
// open to report.
func FindCached(ctx context.Context, db *store.DB, open checkpoint.Options, req store.AnalysisRequest) (*store.Analysis, bool) {
	open.FilesOnly = true
	open.Context = ctx // remote sources: a client that leaves stops the lookups
	base, err := checkpoint.OpenSide(req.Base, open)
	if err != nil {
		return nil, false
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide(req.VLA, open)
	if err != nil {
		return nil, false
	}
	defer vla.Close()
	a, err := db.FindCachedRequest(ctx, Identities(base), Identities(vla), req)
	return a, err == nil
}

// SeriesView is a series as its pages and GET /api/series/{id} show it: each
// step's analyses with their state, and once done the relative ΔW (against
// the base) and the relative drift (against the previous checkpoint), whole
// model and per component.
type SeriesView struct {
	*store.Series
	Steps []SeriesStepView `json:"steps"`
	Done  bool             `json:"done"`
}

// SeriesStepView is one step of a SeriesView.
type SeriesStepView struct {
	store.SeriesStep
	// Name is the name of the step's analysis against the base.
	Name        string                  `json:"name"`
	Status      store.Status            `json:"status"`
	DriftStatus store.Status            `json:"drift_status"`
	Progress    float64                 `json:"progress"`
	Delta       map[string]analysis.Num `json:"rel_delta,omitempty"` // "" is the whole model
	Drift       map[string]analysis.Num `json:"rel_drift,omitempty"`
	DriftNorm   map[string]float64      `json:"drift_norm,omitempty"` // ‖W_t − W_{t−1}‖
}

// LoadSeries reads a series back with the state of its analyses, and the
// tensor statistics of those that are done, by analysis id.
func LoadSeries(ctx context.Context, db *store.DB, id string) (*SeriesView, map[string][]analysis.TensorStats, error) {
	sr, err := db.GetSeries(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	v := &SeriesView{Series: sr, Done: true}
	tensors := map[string][]analysis.TensorStats{}
	load := func(aid string) (*store.Analysis, []analysis.TensorStats, error) {
		a, err := db.Get(ctx, aid)
		if err != nil || a.Status != store.StatusDone {
			return a, nil, err
		}
		if ts, ok := tensors[aid]; ok {
			return a, ts, nil
		}
		ts, err := db.Tensors(ctx, aid, store.TensorFilter{})
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
		sv := SeriesStepView{SeriesStep: st}
		a, ts, err := load(st.AnalysisID)
		if err != nil {
			return nil, nil, err
		}
		d, dts, err := load(st.DriftID)
		if err != nil {
			return nil, nil, err
		}
		sv.Status, sv.DriftStatus = a.Status, d.Status
		if sv.Name = a.Name; sv.Name == "" {
			sv.Name = store.DefaultName(a.Request)
		}
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
