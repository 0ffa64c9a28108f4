package viz

import (
	"maps"
	"slices"
	"strconv"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/deltascope/deltascope/analysis/prune"
)

// ComposeSpecs are the composer's three charts for one resolved recipe: the
// resolve API returns them (?charts=1) and compose.js hands each to setOption,
// so the composer draws no option of its own.
type ComposeSpecs struct {
	Components Spec `json:"components"`
	Layers     Spec `json:"layers"`
	// Mask is the chosen module's layer × unit map; nil when no module is
	// chosen or the analysis has no such module.
	Mask *Spec `json:"mask"`
}

// maskStops colour a mask bin from nothing pruned to all of it.
var maskStops = []string{"#f6f8fa", "#b42318"}

// ComposeCharts builds the composer's charts: the pruned fraction of
// parameters per component and per layer, and for the module named mask (one
// of mods) the fraction of each bin of units the recipe prunes.
func ComposeCharts(p prune.Params, units prune.UnitsPruned, mods []prune.ModuleUnits, mask string) ComposeSpecs {
	out := ComposeSpecs{Components: prunedPerComponent(p.ByComponent).Spec, Layers: prunedPerLayer(p.ByLayer).Spec}
	if i := slices.IndexFunc(mods, func(m prune.ModuleUnits) bool { return m.Module == mask }); i >= 0 {
		s := MaskHeatmap("chart-mask", mods[i], units).Spec
		out.Mask = &s
	}
	return out
}

func prunedPercent(c prune.Count) float64 {
	if c.Before <= 0 {
		return 0
	}
	return round4(100 * float64(c.Before-c.After) / float64(c.Before))
}

func composeBars(x []string, xName string) *charts.Bar {
	b := charts.NewBar()
	b.SetXAxis(x) // Bar.Validate copies this over the axis options' data
	b.SetGlobalOptions(append(xyChart(),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: xName, NameLocation: "middle", NameGap: 26}),
		charts.WithYAxisOpts(opts.YAxis{Type: "value", Name: "% pruned", Min: 0}),
	)...)
	return b
}

// prunedPerComponent is one bar per component with parameters.
func prunedPerComponent(by map[string]prune.Count) Chart {
	var comps []string
	for _, c := range slices.Sorted(maps.Keys(by)) {
		if by[c].Before > 0 {
			comps = append(comps, c)
		}
	}
	data := make([]opts.BarData, len(comps))
	for i, c := range comps {
		data[i] = opts.BarData{Value: prunedPercent(by[c])}
	}
	b := composeBars(comps, "component")
	b.AddSeries("pruned", data)
	b.Validate()
	c := finish("chart-components", "Pruned fraction of parameters per component", b.JSON(), "% pruned", "component", "% pruned")
	c.Spec.Meta.Unit, c.Spec.Meta.Height = "%", 260
	return c
}

// prunedPerLayer is one bar series per component the recipe prunes, along
// the layer numbers; a layer a component lacks is an empty slot ("-").
func prunedPerLayer(by map[string][]prune.Count) Chart {
	var comps []string
	n := 0
	for _, c := range slices.Sorted(maps.Keys(by)) {
		if slices.ContainsFunc(by[c], func(x prune.Count) bool { return x.After < x.Before }) {
			comps = append(comps, c)
			n = max(n, len(by[c]))
		}
	}
	layers := make([]string, n)
	for i := range layers {
		layers[i] = strconv.Itoa(i)
	}
	b := composeBars(layers, "layer")
	b.SetGlobalOptions(charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Top: "0"}))
	for _, comp := range comps {
		data := make([]opts.BarData, n)
		for i := range data {
			data[i] = opts.BarData{Value: "-"} // ECharts' empty value
			if ls := by[comp]; i < len(ls) && ls[i].Before > 0 {
				data[i] = opts.BarData{Value: prunedPercent(ls[i])}
			}
		}
		b.AddSeries(comp, data)
	}
	b.Validate()
	c := finish("chart-layers", "Pruned fraction of parameters per layer", b.JSON(), "% pruned", "layer", "% pruned")
	c.Spec.Meta.Unit = "%"
	return c
}

// MaskHeatmap bins each layer's units of one module (at most 128 bins) and
// colours each bin by the fraction of its units the recipe prunes.
func MaskHeatmap(id string, mod prune.ModuleUnits, units prune.UnitsPruned) Chart {
	maxSize := 1
	for _, s := range mod.Sizes {
		maxSize = max(maxSize, s)
	}
	width := (maxSize + min(128, maxSize) - 1) / min(128, maxSize)
	bins := (maxSize + width - 1) / width
	comp, kind := splitModule(mod.Module)
	pruned := units[comp][kind]
	xLabels := make([]string, bins)
	for x := range xLabels {
		xLabels[x] = strconv.Itoa(x * width)
	}
	yLabels := make([]string, len(mod.Layers))
	var cells []heatCell
	for y, layer := range mod.Layers {
		yLabels[y] = strconv.Itoa(layer)
		size := mod.Sizes[y]
		counts := make([]int, bins)
		for _, u := range pruned[layer] {
			if x := int(u) / width; x < bins {
				counts[x]++
			}
		}
		for x := 0; x*width < size; x++ {
			in := min(width, size-x*width)
			cells = append(cells, heatCell{x: x, y: y, raw: float64(counts[x]) / float64(in)})
		}
	}
	c := heatmapIn(id, "Pruned units of "+mod.Module, "unit", "layer", xLabels, yLabels, cells, View{}, colourRange{lo: 0, hi: 1}, maskStops)
	c.Spec.Meta.Value, c.Spec.Meta.BinWidth, c.Spec.Meta.BinNote = "pruned", width, "units of the bin"
	return c
}

// splitModule splits "llm.ffn_channel" at its last dot.
func splitModule(m string) (component, kind string) {
	for i := len(m) - 1; i >= 0; i-- {
		if m[i] == '.' {
			return m[:i], m[i+1:]
		}
	}
	return m, ""
}
