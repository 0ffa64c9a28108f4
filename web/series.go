package web

import (
	"cmp"
	"math"
	"net/url"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// SeriesStepData is one checkpoint of a series as the page needs it: the
// state of its two analyses, the tensor statistics of the one against the
// base once done (nil before), and the relative ΔW and drift per component
// ("" the whole model) that jobs.LoadSeries summed from both (nil until each
// is done).
type SeriesStepData struct {
	store.SeriesStep
	Name                string // of the analysis against the base
	Status, DriftStatus store.Status
	Progress            float64
	Tensors             []analysis.TensorStats
	Delta, Drift        map[string]analysis.Num
}

// SeriesPage is a training run: ΔW against the base and the drift from the
// previous checkpoint, per component, along the steps; a layer × step
// heatmap per module of one component; a table of steps linking each
// analysis.
type SeriesPage struct {
	Series     *store.Series
	Done       bool // every analysis ended (done, failed or cancelled): the section stops polling
	Self       string
	Components []string
	Component  string
	Lines      []viz.Chart
	Heatmaps   []viz.Chart
	Steps      Table
}

// weightKinds are the module kinds the layer × step heatmaps show: weight
// matrices, as the overview does by default.
var weightKinds = []string{"attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o", "ffn_gate", "ffn_up", "ffn_down", "ffn_fc1", "ffn_fc2",
	"proj_fc1", "proj_fc2", "proj_fc3", "proj_linear", "linear"}

// BuildSeries makes the series page from its steps (in step order).
func BuildSeries(sr *store.Series, steps []SeriesStepData, q url.Values) SeriesPage {
	p := SeriesPage{Series: sr, Done: true}
	stepNums := make([]int64, len(steps))
	for i, st := range steps {
		stepNums[i] = st.Step
		// A failed analysis will not change: stop following once all ended.
		if !st.Status.Terminal() || !st.DriftStatus.Terminal() {
			p.Done = false
		}
	}
	comps := map[string]bool{}
	for _, st := range steps {
		for _, t := range st.Tensors {
			comps[t.Component] = true
		}
	}
	for c := range comps {
		p.Components = append(p.Components, c)
	}
	slices.SortFunc(p.Components, func(a, b string) int { return cmp.Or(cmp.Compare(compRank(a), compRank(b)), cmp.Compare(a, b)) })
	p.Component = q.Get("component")
	if !slices.Contains(p.Components, p.Component) {
		p.Component = ""
		if slices.Contains(p.Components, "llm") {
			p.Component = "llm"
		} else if len(p.Components) > 0 {
			p.Component = p.Components[0]
		}
	}
	self := url.Values{}
	if p.Component != "" {
		self.Set("component", p.Component)
	}
	p.Self = SeriesURL(sr.ID, self)

	// Lines: the whole model first, then each component.
	keys := append([]string{""}, p.Components...)
	label := func(c string) string {
		if c == "" {
			return "whole model"
		}
		return c
	}
	deltaLines := make([]viz.Line, len(keys))
	driftLines := make([]viz.Line, len(keys))
	for k, c := range keys {
		deltaLines[k] = viz.Line{Name: label(c), Values: make([]float64, len(steps))}
		driftLines[k] = viz.Line{Name: label(c), Values: make([]float64, len(steps))}
		for i, st := range steps {
			deltaLines[k].Values[i], driftLines[k].Values[i] = math.NaN(), math.NaN()
			if v, ok := st.Delta[c]; ok {
				deltaLines[k].Values[i] = float64(v)
			}
			if v, ok := st.Drift[c]; ok {
				driftLines[k].Values[i] = float64(v)
			}
		}
	}
	// A point opens the analysis it was read from: the step against the base,
	// or the step against the previous checkpoint.
	deltaIDs, driftIDs := make([]string, len(steps)), make([]string, len(steps))
	for i, st := range steps {
		deltaIDs[i], driftIDs[i] = st.AnalysisID, st.DriftID
	}
	rel := viz.StepLines("series-delta", "Relative ΔW against the base", "‖ΔW‖ / ‖W_base‖", stepNums, deltaIDs, AnalysisURL(""), deltaLines)
	rel.Caption = "‖W_t − W_base‖ / ‖W_base‖ at each checkpoint, for the whole model and each component. Click a point to open that step's analysis."
	drift := viz.StepLines("series-drift", "Drift from the previous checkpoint", "‖W_t − W_t−1‖ / ‖W_t−1‖", stepNums, driftIDs, AnalysisURL(""), driftLines)
	drift.Caption = "How far each part moved since the previous checkpoint (the first: since the base), relative to its size then: when each part moved. Click a point to open the analysis of that step against the previous one."
	p.Lines = []viz.Chart{rel, drift}

	// Layer × step heatmaps of the chosen component, one per module kind.
	if p.Component != "" {
		for _, kind := range weightKinds {
			var cells []viz.LayerStepCell
			layers := map[int]bool{}
			for i, st := range steps {
				for _, t := range st.Tensors {
					if t.Component == p.Component && t.Kind == kind && t.Numeric {
						cells = append(cells, viz.LayerStepCell{Layer: t.Layer, Step: i, Value: float64(t.RelDelta), Analysis: st.AnalysisID})
						layers[t.Layer] = true
					}
				}
			}
			if len(cells) == 0 {
				continue
			}
			ls := make([]int, 0, len(layers))
			for l := range layers {
				ls = append(ls, l)
			}
			slices.Sort(ls)
			p.Heatmaps = append(p.Heatmaps, viz.LayerStepHeatmap(viz.DOMID(p.Component, kind), p.Component+" · "+kind, stepNums, ls, cells,
				viz.View{Metric: viz.MetricRelative, Scale: "linear", Palette: "viridis", Clip: viz.DefaultClip}, AnalysisURL("")))
		}
	}

	p.Steps = Table{ID: "steps", Title: "Checkpoints", Base: p.Self,
		Columns: []string{"step", "analysis", "status", "relative ΔW", "drift since previous"}}
	for i, st := range steps {
		relText, driftText := "–", "–"
		var relVal, driftVal any
		if v := deltaLines[0].Values[i]; !math.IsNaN(v) {
			relText, relVal = viz.FormatValue(v), v
		}
		if v := driftLines[0].Values[i]; !math.IsNaN(v) {
			driftText, driftVal = viz.FormatValue(v), v
		}
		status := string(st.Status)
		if st.DriftStatus != st.Status {
			status += " (drift " + string(st.DriftStatus) + ")"
		}
		p.Steps.Rows = append(p.Steps.Rows, []Cell{
			{Text: strconv.FormatInt(st.Step, 10), Value: st.Step, Num: true},
			{Text: cmp.Or(st.Name, st.AnalysisID), Value: st.AnalysisID, Link: AnalysisURL(st.AnalysisID), ID: st.AnalysisID},
			{Text: status, Value: status},
			{Text: relText, Value: relVal, Num: true},
			{Text: driftText, Value: driftVal, Num: true},
		})
	}
	return p
}

// compRank orders components as the overview does: the trunk first.
func compRank(c string) int {
	order := []string{"llm", "vision.dinov2", "vision.siglip", "projector", "action_expert", "action_head", "embed", "lm_head", "other"}
	if i := slices.Index(order, c); i >= 0 {
		return i
	}
	return len(order)
}
