package viz

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/deltascope/deltascope/assets"
)

// Channel is one output channel (row) or input channel (column) of a tensor.
type Channel struct {
	Index int     `json:"index"`
	Delta float32 `json:"delta_norm"` // ‖ΔW_channel‖
	Base  float32 `json:"base_norm"`  // ‖W_base,channel‖
	Rel   float32 `json:"rel_delta"`  // Delta / (Base + 1e-8), the paper's relative score
}

// Channels pairs the per-channel ΔW and base norms (either may be shorter when
// the shapes differ; the overlap is used).
func Channels(delta, base []float32) []Channel {
	n := min(len(delta), len(base))
	if len(base) == 0 {
		n = len(delta)
	}
	out := make([]Channel, n)
	for i := range n {
		c := Channel{Index: i, Delta: delta[i]}
		if i < len(base) {
			c.Base = base[i]
			c.Rel = float32(float64(delta[i]) / (float64(base[i]) + 1e-8))
		}
		out[i] = c
	}
	return out
}

// Extremes returns the n channels with the highest and the n with the lowest
// relative ΔW, ties broken by index so the tables are stable.
func Extremes(cs []Channel, n int) (top, bottom []Channel) {
	sorted := slices.Clone(cs)
	slices.SortStableFunc(sorted, func(a, b Channel) int { return cmp.Compare(b.Rel, a.Rel) })
	n = min(n, len(sorted))
	top = sorted[:n]
	bottom = slices.Clone(sorted[len(sorted)-n:])
	slices.Reverse(bottom)
	return top, bottom
}

func xyChart() []charts.GlobalOpts { return xyChartAbove("64") }

// xyChartAbove is xyChart with the plot's bottom edge that far up (pixels):
// a zoom slider needs room under the axis name.
func xyChartAbove(bottom string) []charts.GlobalOpts {
	return []charts.GlobalOpts{
		charts.WithInitializationOpts(opts.Initialization{AssetsHost: assets.Prefix, Theme: "white"}),
		charts.WithAnimation(false),
		// Room for the x axis name under the labels (centred there, not at
		// the axis's end, where the grid's edge cut "row" to "ro").
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "24", Top: "36", Bottom: bottom, ContainLabel: opts.Bool(true)}),
	}
}

func finish(id, title string, option map[string]any, value, xName, yName string) Chart {
	return Chart{ID: id, Title: title, Spec: Spec{Option: option, Meta: Meta{Kind: "xy", Value: value, XName: xName, YName: yName, Height: 300}}}
}

// ChannelLine draws ‖ΔW‖ of each channel along the channel index, with a zoom
// slider for wide tensors.
func ChannelLine(id string, cs []Channel, axis string) Chart {
	x := make([]int, len(cs))
	y := make([]opts.LineData, len(cs))
	for i, c := range cs {
		x[i], y[i] = c.Index, opts.LineData{Value: c.Delta}
	}
	l := charts.NewLine()
	l.SetXAxis(x) // Line.Validate copies this over the axis options' data
	l.SetGlobalOptions(append(xyChartAbove("92"),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: axis, NameLocation: "middle", NameGap: 26}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "‖ΔW‖"}),
		charts.WithDataZoomOpts(opts.DataZoom{Type: "inside"}, opts.DataZoom{Type: "slider"}),
	)...)
	l.AddSeries("‖ΔW‖ per "+axis, y, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(false)}))
	l.Validate()
	c := finish(id, "ΔW per "+axis, l.JSON(), "‖ΔW‖", axis, "‖ΔW‖")
	c.Spec.Meta.Height = 340
	return c
}

// Histogram counts channels by ‖ΔW‖ in equal-width bins.
func Histogram(id string, cs []Channel, bins int, axis string) Chart {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range cs {
		if f := float64(c.Delta); !math.IsNaN(f) {
			lo, hi = min(lo, f), max(hi, f)
		}
	}
	counts := make([]int, bins)
	labels := make([]string, bins)
	if hi >= lo {
		w := (hi - lo) / float64(bins)
		for _, c := range cs {
			if f := float64(c.Delta); !math.IsNaN(f) {
				i := bins - 1
				if w > 0 {
					i = min(int((f-lo)/w), bins-1)
				}
				counts[i]++
			}
		}
		for i := range bins {
			labels[i] = FormatValue(lo + w*(float64(i)+0.5))
		}
	}
	data := make([]opts.BarData, bins)
	for i, n := range counts {
		data[i] = opts.BarData{Value: n}
	}
	b := charts.NewBar()
	b.SetXAxis(labels) // Bar.Validate copies this over the axis options' data
	b.SetGlobalOptions(append(xyChart(),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "‖ΔW‖ (bin centre)", NameLocation: "middle", NameGap: 26}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: axis + "s"}),
	)...)
	b.AddSeries(axis+"s", data, charts.WithBarChartOpts(opts.BarChart{BarCategoryGap: "5%"}))
	b.Validate()
	return finish(id, "Histogram of ΔW per "+axis, b.JSON(), axis+"s", "‖ΔW‖", "count")
}

// HeadBars shows ‖ΔW‖ of each attention head: the channels of a head are
// headDim consecutive ones, and their norms combine as √Σ‖·‖². A fused qkv
// tensor holds q, k and v blocks one after the other.
func HeadBars(id string, cs []Channel, headDim int, fusedQKV bool) (Chart, bool) {
	if headDim <= 0 || len(cs) == 0 || len(cs)%headDim != 0 {
		return Chart{}, false
	}
	groups := len(cs) / headDim
	perBlock := groups
	if fusedQKV && groups%3 == 0 {
		perBlock = groups / 3
	} else {
		fusedQKV = false
	}
	labels := make([]string, groups)
	data := make([]opts.BarData, groups)
	for g := range groups {
		var ss float64
		for _, c := range cs[g*headDim : (g+1)*headDim] {
			ss += float64(c.Delta) * float64(c.Delta)
		}
		labels[g] = strconv.Itoa(g % perBlock)
		if fusedQKV {
			labels[g] = string("qkv"[g/perBlock]) + labels[g]
		}
		data[g] = opts.BarData{Value: float32(math.Sqrt(ss))}
	}
	b := charts.NewBar()
	b.SetXAxis(labels)
	b.SetGlobalOptions(append(xyChart(),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "head", NameLocation: "middle", NameGap: 26}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "‖ΔW‖"}),
	)...)
	b.AddSeries("‖ΔW‖ per head", data)
	b.Validate()
	return finish(id, "ΔW per head ("+strconv.Itoa(headDim)+" channels each)", b.JSON(), "‖ΔW‖", "head", "‖ΔW‖"), true
}

// NormScatter plots each channel's base norm against its ‖ΔW‖: channels far
// above the bulk moved more than their size explains.
func NormScatter(id string, cs []Channel, axis string) Chart {
	data := make([]opts.ScatterData, 0, len(cs))
	for _, c := range cs {
		if !math.IsNaN(float64(c.Base)) && !math.IsNaN(float64(c.Delta)) {
			data = append(data, opts.ScatterData{Value: [3]any{c.Base, c.Delta, c.Index}, SymbolSize: 4})
		}
	}
	s := charts.NewScatter()
	s.SetGlobalOptions(append(xyChart(),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "value", Name: "‖W_base‖", NameLocation: "middle", NameGap: 26, Scale: opts.Bool(true)}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "‖ΔW‖", Scale: opts.Bool(true)}),
	)...)
	s.AddSeries(axis+"s", data, charts.WithSeriesOpts(func(s *charts.SingleSeries) { s.Large = opts.Bool(len(data) > 2000) }))
	s.Validate()
	return finish(id, "Base norm vs ΔW per "+axis, s.JSON(), "‖ΔW‖", "‖W_base‖", "‖ΔW‖")
}
