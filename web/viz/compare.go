package viz

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/deltascope/deltascope/analysis"
)

// divergingStops colour a difference: blue below zero, white at zero, orange
// above (PuOr-like, readable with the common colour-vision deficiencies).
var divergingStops = []string{"#2d004b", "#542788", "#8073ac", "#b2abd2", "#f7f7f7", "#fdb863", "#e08214", "#b35806", "#7f3b08"}

// CellOf finds the heatmap cell of a tensor: its component, layer and module
// row, labelled exactly as ModuleHeatmap labels it (so two norms of one layer
// stay two cells).
func CellOf(ts []analysis.TensorStats, name string) (component string, layer int, module string, ok bool) {
	i := slices.IndexFunc(ts, func(t analysis.TensorStats) bool { return t.VLA == name })
	if i < 0 {
		return "", 0, "", false
	}
	var mine []*analysis.TensorStats
	for j := range ts {
		if ts[j].Component == ts[i].Component {
			mine = append(mine, &ts[j])
		}
	}
	return ts[i].Component, ts[i].Layer, columnLabels(mine)[&ts[i]], true
}

// grid is one component's cells of one analysis, by (layer, module row).
type grid map[[2]string]*analysis.TensorStats

func gridOf(ts []analysis.TensorStats, component string) (grid, []int, []string) {
	var mine []*analysis.TensorStats
	for i := range ts {
		if ts[i].Component == component {
			mine = append(mine, &ts[i])
		}
	}
	labels := columnLabels(mine)
	g := grid{}
	var layers []int
	var rows []string
	for _, t := range mine {
		g[[2]string{layerLabel(t.Layer), labels[t]}] = t
		layers, rows = append(layers, t.Layer), append(rows, labels[t])
	}
	return g, layers, rows
}

// CompareHeatmaps draws one component of two analyses on one aligned grid —
// the union of their layers and module rows — and colours both on one range
// (from both analyses' values), so the same colour means the same value on
// either side. diff colours b − a where both have the cell; a cell one side
// lacks stays empty in diff, never a made-up zero. linkA and linkB are the
// tensor page bases of each analysis (see ModuleHeatmap).
func CompareHeatmaps(ta, tb []analysis.TensorStats, component string, v View, linkA, linkB, linkQuery string) (a, b, diff Chart) {
	ga, layersA, rowsA := gridOf(ta, component)
	gb, layersB, rowsB := gridOf(tb, component)
	layers := append(layersA, layersB...)
	slices.Sort(layers)
	layers = slices.Compact(layers)
	rows := append(rowsA, rowsB...)
	slices.SortFunc(rows, func(x, y string) int {
		return cmp.Or(cmp.Compare(rank(kindOrder, kindOf(x)), rank(kindOrder, kindOf(y))), cmp.Compare(x, y))
	})
	rows = slices.Compact(rows)
	xLabels := make([]string, len(layers))
	for i, l := range layers {
		xLabels[i] = layerLabel(l)
	}

	var cellsA, cellsB, cellsD []heatCell
	var raws, diffs []float64
	onlyA, onlyB := 0, 0
	for y, row := range rows {
		for x, l := range xLabels {
			k := [2]string{l, row}
			sa, sb := ga[k], gb[k]
			va, vb := math.NaN(), math.NaN()
			if sa != nil {
				va = v.Metric.Value(sa)
				cellsA = append(cellsA, heatCell{x: x, y: y, raw: va, name: sa.VLA})
				raws = append(raws, va)
			}
			if sb != nil {
				vb = v.Metric.Value(sb)
				cellsB = append(cellsB, heatCell{x: x, y: y, raw: vb, name: sb.VLA})
				raws = append(raws, vb)
			}
			switch {
			case sa != nil && sb == nil:
				onlyA++
			case sb != nil && sa == nil:
				onlyB++
			case sa != nil:
				d := vb - va
				cellsD = append(cellsD, heatCell{x: x, y: y, raw: d, name: sb.VLA})
				if !math.IsNaN(d) && !math.IsInf(d, 0) {
					diffs = append(diffs, math.Abs(d))
				}
			}
		}
	}
	shared := newColourRange(raws, v)
	stops := paletteStops[v.Palette]
	a = heatmapIn(DOMID("cmp-a", component), component+" · a", "layer", "module", xLabels, rows, cellsA, v, shared, stops)
	b = heatmapIn(DOMID("cmp-b", component), component+" · b", "layer", "module", xLabels, rows, cellsB, v, shared, stops)
	a.Spec.Meta.LinkBase, a.Spec.Meta.LinkQuery = linkA, linkQuery
	b.Spec.Meta.LinkBase, b.Spec.Meta.LinkQuery = linkB, linkQuery
	caption := fmt.Sprintf("%s per tensor, one colour range for both analyses; clipped at the %gth percentile.", MetricLabel(v.Metric), v.Clip)
	a.Caption, b.Caption = caption, caption

	// The difference is signed: a symmetric linear range around zero, clipped
	// at the same percentile of |b − a|.
	slices.Sort(diffs)
	m := Percentile(diffs, v.Clip)
	if !(m > 0) {
		m = 1e-12
	}
	dv := v
	dv.Scale = "linear"
	diff = heatmapIn(DOMID("cmp-diff", component), component+" · b − a", "layer", "module", xLabels, rows, cellsD, dv, colourRange{lo: -m, hi: m}, divergingStops)
	diff.Spec.Meta.Value = "b − a of " + MetricLabel(v.Metric)
	diff.Spec.Meta.Log = false
	var missing []string
	if onlyA > 0 {
		missing = append(missing, fmt.Sprintf("%d only in a", onlyA))
	}
	if onlyB > 0 {
		missing = append(missing, fmt.Sprintf("%d only in b", onlyB))
	}
	diff.Caption = fmt.Sprintf("b − a of %s on the aligned layer × module grid; orange: b changed more, purple: a did.", MetricLabel(v.Metric))
	if len(missing) > 0 {
		diff.Caption += " Empty cells are missing on one side (" + strings.Join(missing, ", ") + ")."
	}
	return a, b, diff
}
