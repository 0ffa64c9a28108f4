package viz

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"
)

// Line is one named series of values, one per step; NaN is a gap (a step
// whose analysis is not done).
type Line struct {
	Name   string
	Values []float64
}

// StepLines draws several lines against the training step. A click on the
// point of step i opens linkBase + analyses[i] (none where it is empty).
func StepLines(id, title, yName string, steps []int64, analyses []string, linkBase string, lines []Line) Chart {
	x := make([]string, len(steps))
	for i, s := range steps {
		x[i] = strconv.FormatInt(s, 10)
	}
	l := charts.NewLine()
	l.SetXAxis(x)
	l.SetGlobalOptions(append(xyChart(),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "0", Type: "scroll"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: "step", NameLocation: "middle", NameGap: 26}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: yName}),
	)...)
	// The y axis's name (left-aligned, see alignNameLeft) gets a row of its
	// own under the legend, which it would otherwise run into.
	l.GridList[0].Top = "60"
	for _, ln := range lines {
		data := make([]opts.LineData, len(ln.Values))
		for i, v := range ln.Values {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				data[i] = opts.LineData{Value: nil}
			} else {
				data[i] = opts.LineData{Value: v}
			}
		}
		l.AddSeries(ln.Name, data, charts.WithLineChartOpts(opts.LineChart{ShowSymbol: opts.Bool(true), ConnectNulls: opts.Bool(false)}))
	}
	l.Validate()
	option := l.JSON()
	alignNameLeft(option, "yAxis")
	c := finish(id, title, option, yName, "step", yName)
	c.Spec.Meta.Height = 320
	// A click on a point opens that step's analysis; the names are keyed by
	// the point's index along x, which is what a line chart's click reports.
	if linkBase != "" && len(analyses) == len(steps) {
		c.Spec.Meta.LinkBase = linkBase
		c.Spec.Meta.Names = make(map[string]string, len(analyses))
		for i, a := range analyses {
			if a != "" {
				c.Spec.Meta.Names[strconv.Itoa(i)] = a
			}
		}
	}
	return c
}

// LayerStepCell is the value of one layer at one step, and the analysis a
// click on it opens.
type LayerStepCell struct {
	Layer    int
	Step     int
	Value    float64
	Analysis string
}

// LayerStepHeatmap is a layer × step heatmap of one module: steps along x,
// layers along y. A click on a cell opens that step's analysis: linkBase and
// the escaped analysis id (web.AnalysisURL("")).
func LayerStepHeatmap(id, title string, steps []int64, layers []int, cells []LayerStepCell, v View, linkBase string) Chart {
	xLabels := make([]string, len(steps))
	for i, s := range steps {
		xLabels[i] = strconv.FormatInt(s, 10)
	}
	yLabels := make([]string, len(layers))
	row := map[int]int{}
	for i, l := range layers {
		yLabels[i] = layerLabel(l)
		row[l] = i
	}
	hc := make([]heatCell, 0, len(cells))
	for _, c := range cells {
		y, ok := row[c.Layer]
		if !ok || c.Step < 0 || c.Step >= len(steps) {
			continue
		}
		hc = append(hc, heatCell{x: c.Step, y: y, raw: c.Value, name: c.Analysis})
	}
	ch := heatmap(DOMID("series", id), title, "step", "layer", xLabels, yLabels, hc, v)
	ch.Spec.Meta.LinkBase = linkBase
	ch.Caption = fmt.Sprintf("%s per layer at each checkpoint; colours clipped at the %gth percentile. Click a cell to open that step's analysis.", MetricLabel(v.Metric), v.Clip)
	return ch
}

// alignNameLeft makes the names of option's axes of this kind ("yAxis") start
// at their axis and run right, into the chart: centred on a y axis near the
// canvas's left edge, a long name ("‖W_t − W_t−1‖ / ‖W_t−1‖") lost its start.
// go-echarts has no nameTextStyle for axes, so the axes are rewritten as maps.
func alignNameLeft(option map[string]any, kind string) {
	raw, err := json.Marshal(option[kind])
	if err != nil {
		return
	}
	var axes []map[string]any
	if json.Unmarshal(raw, &axes) != nil {
		return
	}
	for _, a := range axes {
		a["nameTextStyle"] = map[string]any{"align": "left"}
	}
	option[kind] = axes
}
