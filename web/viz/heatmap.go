package viz

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/assets"
)

// componentOrder is the order components appear on a page: the model's
// trunk first, then the vision side, the bridge, the action side, the ends.
var componentOrder = []string{"llm", "vision.dinov2", "vision.siglip", "projector", "action_expert", "action_head", "embed", "lm_head", "other"}

// kindOrder puts attention before the FFN, weights before norms and biases,
// as the paper's figures do.
var kindOrder = []string{
	"attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o", "ffn_gate", "ffn_up", "ffn_down", "ffn_fc1", "ffn_fc2",
	"proj_fc1", "proj_fc2", "proj_fc3", "proj_linear", "linear", "layer_scale", "norm", "bias",
	"embed", "patch_embed", "pos_embed", "token", "attn_pool", "other",
}

// Components lists the components present in ts, in page order.
func Components(ts []analysis.TensorStats) []string {
	seen := map[string]bool{}
	for i := range ts {
		seen[ts[i].Component] = true
	}
	return inPageOrder(seen)
}

// inPageOrder lists a set of component names in the order pages show them
// (componentOrder, then by name).
func inPageOrder(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(componentOrder, a), rank(componentOrder, b)), cmp.Compare(a, b))
	})
	return out
}

func rank(order []string, s string) int {
	if i := slices.Index(order, s); i >= 0 {
		return i
	}
	return len(order)
}

// HeatmapCell is one cell of a heatmap before it is coloured.
type heatCell struct {
	x, y int
	raw  float64
	name string // the tensor (module heatmaps)
}

// ModuleHeatmap is the layer × module-kind heatmap of one component: layers
// along x, module kinds along y, coloured by the view's metric. A click on a
// cell opens linkBase + escaped name + "?" + linkQuery (see Meta).
//
// The llm heatmap also holds the embedding and lm_head as rows of their own
// (in the layer-less "—" column, like the final norm): alone, each would be a
// 1×1 map stretched to a full-width bar. With v.Weights only weight matrices
// are drawn, so the colour scale is theirs.
func ModuleHeatmap(ts []analysis.TensorStats, component string, v View, linkBase, linkQuery string) Chart {
	var mine []*analysis.TensorStats
	left := 0
	for i := range ts {
		if !slices.Contains(heatmapMembers(component), ts[i].Component) {
			continue
		}
		if v.Weights && !IsWeight(&ts[i]) {
			left++
			continue
		}
		mine = append(mine, &ts[i])
	}
	labels := columnLabels(mine)
	var layers []int
	var rows []string
	for _, t := range mine {
		layers = append(layers, t.Layer)
		rows = append(rows, labels[t])
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
		cells = append(cells, heatCell{
			x: slices.Index(layers, t.Layer), y: slices.Index(rows, labels[t]),
			raw: v.Metric.Value(t), name: t.VLA,
		})
	}
	c := heatmap(DOMID("heatmap", component), component, "layer", "module", xLabels, rows, cells, v)
	c.Spec.Meta.LinkBase, c.Spec.Meta.LinkQuery = linkBase, linkQuery
	c.Caption = fmt.Sprintf("%s per tensor; colours clipped at the %gth percentile. Click a cell for its channels.", MetricLabel(v.Metric), v.Clip)
	if left > 0 {
		c.Caption += fmt.Sprintf(" Weight matrices only: %d tokens, norms and biases are left out (untick “weights only” to see them).", left)
	}
	return c
}

// endComponents are components of one layer-less tensor each, drawn as rows
// of the llm heatmap when there is one.
var endComponents = []string{"embed", "lm_head"}

func heatmapMembers(component string) []string {
	if component == "llm" {
		return append([]string{"llm"}, endComponents...)
	}
	return []string{component}
}

// HeatmapComponents lists the components that get a heatmap of their own, in
// page order: every one, except embed and lm_head when the llm's map shows
// them.
func HeatmapComponents(ts []analysis.TensorStats) []string {
	return ownHeatmaps(Components(ts))
}

// ownHeatmaps keeps, of all components, those drawn as heatmaps of their own:
// without embed and lm_head when the llm's map holds them as rows.
func ownHeatmaps(all []string) []string {
	if !slices.Contains(all, "llm") {
		return all
	}
	return slices.DeleteFunc(all, func(c string) bool { return slices.Contains(endComponents, c) })
}

// endRow names the row of an end (embed, lm_head) in the llm's heatmap by
// what it is: lm_head's kind is "embed" too (a vocabulary × width matrix),
// which labelled its row wrongly. It is "" for any other component.
func endRow(component string) string {
	switch component {
	case "embed":
		return "embed_tokens"
	case "lm_head":
		return "lm_head"
	}
	return ""
}

// InHeatmap reports whether tensor t is a cell of component's heatmap under
// view v (the heatmap's table of cells lists the same tensors).
func InHeatmap(t *analysis.TensorStats, component string, v View) bool {
	return slices.Contains(heatmapMembers(component), t.Component) && (!v.Weights || IsWeight(t))
}

// kindOf is the kind part of a column label ("norm · input_layernorm" → "norm").
func kindOf(label string) string {
	k, _, _ := strings.Cut(label, " · ")
	k, _, _ = strings.Cut(k, " ")
	return k
}

func layerLabel(l int) string {
	if l < 0 {
		return "—"
	}
	return strconv.Itoa(l)
}

// columnLabels names the module row of each tensor: its kind, unless two
// tensors of one layer share a kind (two norms, several biases), in which case
// every tensor of that kind is told apart by its path inside the layer.
func columnLabels(ts []*analysis.TensorStats) map[*analysis.TensorStats]string {
	base := func(t *analysis.TensorStats) string {
		if r := endRow(t.Component); r != "" {
			return r
		}
		if t.Kind == "bias" && t.Of != "" {
			return t.Of + " bias"
		}
		return t.Kind
	}
	type key struct {
		layer int
		label string
	}
	count := map[key]int{}
	for _, t := range ts {
		count[key{t.Layer, base(t)}]++
	}
	ambiguous := map[string]bool{}
	for k, n := range count {
		if n > 1 {
			ambiguous[k.label] = true
		}
	}
	out := make(map[*analysis.TensorStats]string, len(ts))
	for _, t := range ts {
		l := base(t)
		if ambiguous[l] {
			l += " · " + strings.TrimSuffix(localName(t.VLA, t.Layer), ".weight")
		}
		out[t] = l
	}
	return out
}

// localName is the part of a tensor name inside its layer
// ("model.layers.3.self_attn.q_proj.weight" → "self_attn.q_proj.weight"), or
// its last two segments when it is in no numbered layer.
func localName(name string, layer int) string {
	segs := strings.Split(name, ".")
	if layer >= 0 {
		l := strconv.Itoa(layer)
		for i := 0; i+2 < len(segs); i++ {
			if segs[i+1] == l && (segs[i] == "layers" || segs[i] == "blocks" || segs[i] == "layer") {
				return strings.Join(segs[i+2:], ".")
			}
		}
	}
	return strings.Join(segs[max(0, len(segs)-2):], ".")
}

// MaxUnitBins bounds the columns of a unit heatmap: a 11008-channel FFN is
// binned so a laptop screen still shows one column per bin.
const MaxUnitBins = 256

// UnitHeatmap is the layer × unit heatmap of one component's units of one kind
// (ffn_channel or attn_head), like the paper's figures: layers along y, unit
// index along x, binned to at most maxBins columns where each bin shows the
// MAXIMUM score of its units, so a single outlier channel stays visible.
func UnitHeatmap(us []analysis.UnitScores, component, kind string, v View, maxBins int) Chart {
	var mine []*analysis.UnitScores
	width := 0
	for i := range us {
		if us[i].Component == component && us[i].Kind == kind {
			mine = append(mine, &us[i])
			width = max(width, len(us[i].Scores))
		}
	}
	slices.SortFunc(mine, func(a, b *analysis.UnitScores) int { return cmp.Compare(a.Layer, b.Layer) })
	binWidth := max(1, (width+maxBins-1)/max(maxBins, 1))
	bins := (width + binWidth - 1) / binWidth
	xLabels := make([]string, bins)
	for b := range bins {
		xLabels[b] = strconv.Itoa(b * binWidth)
	}
	yLabels := make([]string, len(mine))
	cells := make([]heatCell, 0, len(mine)*bins)
	for y, u := range mine {
		yLabels[y] = layerLabel(u.Layer)
		for b := range bins {
			best := math.NaN()
			for _, s := range u.Scores[min(b*binWidth, len(u.Scores)):min((b+1)*binWidth, len(u.Scores))] {
				if f := float64(s); !math.IsNaN(f) && (math.IsNaN(best) || f > best) {
					best = f
				}
			}
			cells = append(cells, heatCell{x: b, y: y, raw: best})
		}
	}
	unit := map[string]string{"ffn_channel": "channel", "attn_head": "head"}[kind]
	c := heatmap(DOMID("units", component, kind), component+" · "+kind, unit, "layer", xLabels, yLabels, cells, v)
	c.Spec.Meta.BinWidth = binWidth
	metric, variant := "", ""
	if len(mine) > 0 {
		metric, variant = string(mine[0].Metric), string(mine[0].Variant)
	}
	c.Caption = fmt.Sprintf("%s score per %s (%s rule)", metric, unit, variant)
	if binWidth > 1 {
		c.Caption += fmt.Sprintf("; %d %ss, binned by %d: each column shows the maximum of its bin", width, unit, binWidth)
	}
	c.Caption += fmt.Sprintf("; colours clipped at the %gth percentile.", v.Clip)
	return c
}

// heatSeries adds what go-echarts has no field for: progressive 0 draws every
// cell in one frame (big heatmaps are otherwise ~8× slower, see DESIGN.md).
type heatSeries struct {
	charts.SingleSeries
	Progressive int `json:"progressive"`
}

func heatmap(id, title, xName, yName string, xLabels, yLabels []string, cells []heatCell, v View) Chart {
	raws := make([]float64, len(cells))
	for i, c := range cells {
		raws[i] = c.raw
	}
	return heatmapIn(id, title, xName, yName, xLabels, yLabels, cells, v, newColourRange(raws, v), paletteStops[v.Palette])
}

// heatmapIn is heatmap with a given colour range and palette: side-by-side
// maps share one range so equal colours mean equal values (compare.go).
func heatmapIn(id, title, xName, yName string, xLabels, yLabels []string, cells []heatCell, v View, r colourRange, stops []string) Chart {
	data := make([]opts.HeatMapData, 0, len(cells))
	meta := Meta{Kind: "heatmap", Value: MetricLabel(v.Metric), XName: xName, YName: yName, XLabels: xLabels, YLabels: yLabels, Log: r.log,
		Height: max(180, 18*len(yLabels)+110)}
	for _, c := range cells {
		if math.IsNaN(c.raw) || math.IsInf(c.raw, 0) {
			continue // no value: an empty cell, never a made-up colour
		}
		data = append(data, opts.HeatMapData{Value: [4]any{c.x, c.y, r.shown(c.raw), float32(c.raw)}})
		key := strconv.Itoa(c.x) + "," + strconv.Itoa(c.y)
		if c.name != "" {
			if meta.Names == nil {
				meta.Names = map[string]string{}
			}
			meta.Names[key] = c.name
		}
	}
	hm := charts.NewHeatMap()
	hm.SetGlobalOptions(
		charts.WithInitializationOpts(opts.Initialization{AssetsHost: assets.Prefix, Theme: "white"}),
		charts.WithAnimation(false),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "item"}),
		// The x axis name sits centred under the labels: at the axis's end
		// (the default) the grid's right edge cut "layer" to "la".
		charts.WithXAxisOpts(opts.XAxis{Type: "category", Name: xName, NameLocation: "middle", NameGap: 24, Data: xLabels, SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithYAxisOpts(opts.YAxis{Type: "category", Name: yName, Data: yLabels, SplitArea: &opts.SplitArea{Show: opts.Bool(true)}}),
		charts.WithGridOpts(opts.Grid{Left: "8", Right: "24", Top: "28", Bottom: "76", ContainLabel: opts.Bool(true)}),
	)
	hm.AddSeries(title, data)
	hm.Validate()
	option := hm.JSON()
	series := make([]heatSeries, len(hm.MultiSeries))
	for i, s := range hm.MultiSeries {
		series[i] = heatSeries{SingleSeries: s}
	}
	option["series"] = series
	option["visualMap"] = r.visualMapOption(stops)
	meta.Height += 20 // the axis name under the labels
	return Chart{ID: id, Title: title, Spec: Spec{Option: option, Meta: meta}}
}
