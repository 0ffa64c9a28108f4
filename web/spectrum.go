package web

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// SpectrumPage is the spectrum tab: the job's state, and once done a
// layer × module heatmap per component of the chosen spectral metric.
type SpectrumPage struct {
	Analysis *store.Analysis
	Tabs     []Tab
	// Job is nil when no spectrum was asked for yet.
	Job      *store.Spectrum
	Metric   viz.SpectralMetric
	Metrics  []viz.Option
	Rank     int // the rank K the page shows, or the default for the start form
	Charts   []viz.Chart
	Summary  Table
	Permille string
	Percent  string
	Bytes    string
	// Cost compares the spectral job's compute time with the analysis's.
	Cost string
	// CanStart is false for a viewer (starting a job needs an editor).
	CanStart bool
	Self     string // this page's URL, which the running job's section polls
}

// Running says whether the job is still to finish (the section polls).
func (p SpectrumPage) Running() bool { return p.Job != nil && !p.Job.Status.Terminal() }

// BuildSpectrum makes the spectrum page of analysis a from its job (nil when
// none), with the metric the query names.
func BuildSpectrum(a *store.Analysis, job *store.Spectrum, q url.Values, canStart bool) SpectrumPage {
	p := SpectrumPage{Analysis: a, Job: job, Metric: viz.ParseSpectralMetric(q.Get("metric")), Metrics: viz.SpectralMetrics,
		Rank: spectral.DefaultRank, CanStart: canStart}
	for _, t := range []Tab{{ID: TabOverview, Label: "Overview"}, {ID: TabUnits, Label: "Units"}, {ID: TabUnmatched, Label: "Unmatched & mismatched"}} {
		t.Href = AnalysisViewURL(a.ID, url.Values{"tab": {t.ID}})
		p.Tabs = append(p.Tabs, t)
	}
	p.Tabs = append(p.Tabs, Tab{ID: "spectrum", Label: "Spectrum", Href: SpectrumURL(a.ID, nil), Current: true})
	self := url.Values{}
	if p.Metric != viz.SpectralRank90 {
		self.Set("metric", string(p.Metric))
	}
	if job == nil {
		p.Self = SpectrumURL(a.ID, self)
		return p
	}
	p.Rank = job.Rank
	self.Set("rank", strconv.Itoa(job.Rank))
	p.Self = SpectrumURL(a.ID, self)
	prog := job.Progress()
	p.Permille, p.Percent = strconv.Itoa(int(prog*1000)), Percent(prog)
	p.Bytes = viz.FormatBytes(job.BytesDone) + " of " + viz.FormatBytes(job.BytesTotal)
	if job.Result == nil {
		return p
	}
	res := job.Result
	if a.StartedAt != nil && a.FinishedAt != nil && job.Seconds > 0 {
		if plain := a.FinishedAt.Sub(*a.StartedAt).Seconds(); plain > 0 {
			p.Cost = fmt.Sprintf("Computed in %.1f s, %.0f× the %.1f s of the analysis itself (%d power iterations at most, %d extra directions).",
				job.Seconds, job.Seconds/plain, plain, res.Power, res.Oversample)
		}
	}
	if p.Cost == "" && job.Seconds > 0 {
		p.Cost = fmt.Sprintf("Computed in %.1f s.", job.Seconds)
	}
	for _, c := range viz.SpectrumHeatmapComponents(res.Tensors) {
		p.Charts = append(p.Charts, viz.SpectrumHeatmap(res.Tensors, res.Rank, c, p.Metric, viz.View{Scale: "linear", Palette: "viridis", Clip: 100},
			TensorsPrefix(a.ID), ""))
	}
	p.Summary = spectrumSummary(a.ID, res, p.Self)
	return p
}

// spectrumSummary counts, per component, the changed matrices a LoRA of rank
// 8, 16 or K would capture to 90 % of their ΔW energy.
func spectrumSummary(id string, res *spectral.Result, base string) Table {
	k := strconv.Itoa(res.Rank)
	t := Table{ID: "spectrum-summary", Title: "Could a LoRA have done it?", Base: base,
		Columns: []string{"component", "changed matrices", "90 % within rank 8", "within 16", "within " + k, "median stable rank"},
		Empty:   "No 2-D tensor changed."}
	for _, c := range viz.SpectrumComponents(res.Tensors) {
		var n, r8, r16, rk int
		var srs []float64
		for _, ts := range res.Tensors {
			if ts.Component != c || ts.Block != "" || ts.FroDelta == 0 {
				continue
			}
			n++
			srs = append(srs, float64(ts.StableRank))
			if ts.Rank90 != nil {
				rk++
				if *ts.Rank90 <= 8 {
					r8++
				}
				if *ts.Rank90 <= 16 {
					r16++
				}
			}
		}
		if n == 0 {
			continue
		}
		slices.Sort(srs)
		med := viz.Percentile(srs, 50)
		num := func(v int) Cell { return Cell{Text: strconv.Itoa(v), Value: v, Num: true} }
		t.Rows = append(t.Rows, []Cell{{Text: c, Value: c}, num(n), num(r8), num(r16), num(rk),
			{Text: viz.FormatValue(med), Value: med, Num: true}})
	}
	return t
}

// TensorSpectrumCharts are the singular-value and energy curves of one
// tensor, and of each block of a fused qkv weight.
func TensorSpectrumCharts(res *spectral.Result, name string) []viz.Chart {
	var out []viz.Chart
	for _, t := range res.Tensors {
		if t.VLA != name {
			continue
		}
		title := fmt.Sprintf("Spectrum of ΔW (top %d)", len(t.SingularValues))
		if t.Block != "" {
			title += " · " + t.Block + " block"
		}
		id := "spectrum-curve"
		if t.Block != "" {
			id = viz.DOMID(id, t.Block)
		}
		c := viz.SpectrumCurve(id, title, t.Spectrum)
		c.Caption = "Singular values of ΔW (left) and the fraction of ‖ΔW‖² the top k hold (right)"
		if t.Rank90 != nil {
			c.Caption += fmt.Sprintf("; 90 %% by rank %d", *t.Rank90)
		} else {
			c.Caption += fmt.Sprintf("; more than %d directions for 90 %%", res.Rank)
		}
		c.Caption += fmt.Sprintf("; stable rank %s.", viz.FormatValue(float64(t.StableRank)))
		out = append(out, c)
	}
	return out
}
