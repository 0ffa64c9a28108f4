package viz

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/deltascope/deltascope/analysis/spectral"
)

// SpectralMetric is what a spectrum heatmap colours by.
type SpectralMetric string

const (
	// SpectralRank90 is the rank that holds 90 % of ‖ΔW‖²: "could a LoRA of
	// rank r have done this?". More than K shows as K+1.
	SpectralRank90 SpectralMetric = "rank90"
	// SpectralEnergy8 and SpectralEnergy16 are the fractions of ‖ΔW‖² the top
	// 8 or 16 directions hold.
	SpectralEnergy8  SpectralMetric = "energy8"
	SpectralEnergy16 SpectralMetric = "energy16"
	// SpectralStableRank is ‖ΔW‖²_F / σ₁².
	SpectralStableRank SpectralMetric = "stable"
)

// SpectralMetrics lists the metrics with their labels, for the page's picker.
var SpectralMetrics = []Option{
	{string(SpectralRank90), "rank for 90 % energy"},
	{string(SpectralEnergy8), "energy in top 8"},
	{string(SpectralEnergy16), "energy in top 16"},
	{string(SpectralStableRank), "stable rank"},
}

// ParseSpectralMetric returns the metric named s, or rank90.
func ParseSpectralMetric(s string) SpectralMetric {
	if isOption(SpectralMetrics, s) {
		return SpectralMetric(s)
	}
	return SpectralRank90
}

// Label is the metric's wording on the page.
func (m SpectralMetric) Label() string {
	for _, o := range SpectralMetrics {
		if o.Value == string(m) {
			return o.Label
		}
	}
	return string(m)
}

// Value is the metric of one spectrum of rank K; NaN when it cannot say (an
// energy at a rank beyond the values kept).
func (m SpectralMetric) Value(s spectral.Spectrum, k int) float64 {
	switch m {
	case SpectralEnergy8, SpectralEnergy16:
		r := 8
		if m == SpectralEnergy16 {
			r = 16
		}
		switch {
		case len(s.Energy) == 0:
			return math.NaN()
		case r <= len(s.Energy):
			return s.Energy[r-1]
		case len(s.Energy) < k:
			// A matrix smaller than K: its last value already holds everything.
			return s.Energy[len(s.Energy)-1]
		}
		return math.NaN()
	case SpectralStableRank:
		return float64(s.StableRank)
	}
	if s.Rank90 == nil {
		return float64(k + 1)
	}
	return float64(*s.Rank90)
}

// SpectrumLabel is the module row of a spectrum: its kind, and for a block of
// a fused qkv weight, which block.
func SpectrumLabel(t *spectral.Tensor) string {
	if t.Block != "" {
		return t.Kind + " · " + t.Block
	}
	return t.Kind
}

// SpectrumComponents lists the components with spectra, in page order.
func SpectrumComponents(ts []spectral.Tensor) []string {
	seen := map[string]bool{}
	for i := range ts {
		seen[ts[i].Component] = true
	}
	return inPageOrder(seen)
}

// SpectrumHeatmapComponents lists the components that get a spectrum heatmap
// of their own: as on the overview (HeatmapComponents), the embedding and
// lm_head are rows of the llm's map when there is one, not 1×1 maps
// stretched to full-width bars.
func SpectrumHeatmapComponents(ts []spectral.Tensor) []string {
	return ownHeatmaps(SpectrumComponents(ts))
}

// spectrumRow names a tensor's row in a spectrum heatmap: the ends by what
// they are (endRow), the others as SpectrumLabel does.
func spectrumRow(t *spectral.Tensor) string {
	return cmp.Or(endRow(t.Component), SpectrumLabel(t))
}

// SpectrumHeatmap is the layer × module heatmap of one component's spectra,
// coloured by m. A fused qkv weight shows as its q, k and v blocks. A click on
// a cell opens the tensor page (linkBase + name + "?" + linkQuery).
func SpectrumHeatmap(ts []spectral.Tensor, k int, component string, m SpectralMetric, v View, linkBase, linkQuery string) Chart {
	fused := map[string]bool{}
	for i := range ts {
		if ts[i].Block != "" {
			fused[ts[i].VLA] = true
		}
	}
	var mine []*spectral.Tensor
	for i := range ts {
		t := &ts[i]
		if slices.Contains(heatmapMembers(component), t.Component) && !(t.Block == "" && fused[t.VLA]) {
			mine = append(mine, t)
		}
	}
	var layers []int
	var rows []string
	for _, t := range mine {
		layers = append(layers, t.Layer)
		rows = append(rows, spectrumRow(t))
	}
	slices.Sort(layers)
	layers = slices.Compact(layers)
	slices.SortFunc(rows, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(kindOrder, kindOf(a)), rank(kindOrder, kindOf(b))), cmp.Compare(a, b))
	})
	rows = slices.Compact(rows)
	xLabels := make([]string, len(layers))
	for i, l := range layers {
		xLabels[i] = layerLabel(l)
	}
	cells := make([]heatCell, 0, len(mine))
	for _, t := range mine {
		cells = append(cells, heatCell{x: slices.Index(layers, t.Layer), y: slices.Index(rows, spectrumRow(t)),
			raw: m.Value(t.Spectrum, k), name: t.VLA})
	}
	// Ranks and fractions are read as they are: no percentile clipping.
	v.Clip = 100
	c := heatmap(DOMID("spectrum", component), component, "layer", "module", xLabels, rows, cells, v)
	c.Spec.Meta.Value = m.Label()
	c.Spec.Meta.LinkBase, c.Spec.Meta.LinkQuery = linkBase, linkQuery
	switch m {
	case SpectralRank90:
		c.Caption = fmt.Sprintf("The rank whose top singular directions hold 90 %% of ‖ΔW‖² (a LoRA of that rank would capture it); %d means more than %d. Click a cell for its spectrum.", k+1, k)
	case SpectralStableRank:
		c.Caption = "Stable rank ‖ΔW‖²_F / σ₁²: near 1 when one direction dominates. Click a cell for its spectrum."
	default:
		c.Caption = "Fraction of ‖ΔW‖² in the top singular directions (1 = all of it). Click a cell for its spectrum."
	}
	return c
}

// SpectrumCurve draws one ΔW's singular values (left axis) with the fraction
// of ‖ΔW‖² the top k of them hold (right axis, 0..1), against k.
func SpectrumCurve(id, title string, s spectral.Spectrum) Chart {
	n := len(s.SingularValues)
	x := make([]string, n)
	sv := make([]opts.LineData, n)
	en := make([]opts.LineData, n)
	for i := range n {
		x[i] = strconv.Itoa(i + 1)
		sv[i] = opts.LineData{Value: s.SingularValues[i]}
		en[i] = opts.LineData{Value: s.Energy[i]}
	}
	l := charts.NewLine()
	l.SetXAxis(x)
	l.SetGlobalOptions(append(xyChart(),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "0"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "k"}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "σₖ"}),
	)...)
	l.ExtendYAxis(opts.YAxis{Type: "value", Name: "energy", Min: 0, Max: 1})
	l.AddSeries("σₖ", sv)
	l.AddSeries("energy in top k", en, charts.WithLineChartOpts(opts.LineChart{YAxisIndex: 1}))
	l.Validate()
	return finish(id, title, l.JSON(), "σₖ", "k", "σₖ")
}
