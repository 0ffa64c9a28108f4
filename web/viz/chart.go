package viz

import (
	"math"
	"slices"
	"strings"
)

// Chart is one chart of a page: where it goes, what it is called, and the
// ECharts option common.js hands to setOption.
type Chart struct {
	// ID is the DOM id of the chart's container; its data script is ID+"-data".
	ID      string
	Title   string
	Caption string // how to read it: the metric, the binning, the clipping
	Spec    Spec
}

// Spec is what the page embeds (templ.JSONScript) for common.js.
type Spec struct {
	Option map[string]any `json:"option"`
	Meta   Meta           `json:"meta"`
}

// Meta tells common.js what the option cannot: how to word tooltips (ECharts
// formatters are functions, and functions cannot travel as JSON) and where a
// click on a cell goes.
type Meta struct {
	Kind    string   `json:"kind"` // heatmap | xy
	Value   string   `json:"value"`
	XName   string   `json:"x_name,omitempty"`
	YName   string   `json:"y_name,omitempty"`
	XLabels []string `json:"x_labels,omitempty"`
	YLabels []string `json:"y_labels,omitempty"`
	// Names of the tensor (or unit range) under each heatmap cell, keyed "x,y";
	// in an xy chart, of what each point along x opens, keyed by its index.
	Names map[string]string `json:"names,omitempty"`
	// A click on a named cell opens LinkBase + the escaped name + "?" +
	// LinkQuery + "&sel=" + the escaped name (the tensor page, keeping the
	// view): built in common.js so a thousand-cell map does not carry a thousand
	// URLs.
	LinkBase  string `json:"link_base,omitempty"`
	LinkQuery string `json:"link_query,omitempty"`
	// Log says the colour dimension holds log10 values; tooltips show the raw
	// value, which every heatmap cell carries as its fourth number.
	Log bool `json:"log,omitempty"`
	// BinWidth is how many units one heatmap column holds (unit heatmaps);
	// BinNote says what a binned cell shows (default: the bin's maximum).
	BinWidth int    `json:"bin_width,omitempty"`
	BinNote  string `json:"bin_note,omitempty"`
	// Unit follows each value in an xy chart's tooltip ("%").
	Unit string `json:"unit,omitempty"`
	// Height is the chart's height in CSS pixels, from its number of rows.
	Height int `json:"height"`
}

// DOMID makes a DOM id from arbitrary text: letters and digits kept, anything
// else a dash.
func DOMID(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('-')
		}
		for _, r := range p {
			if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				b.WriteRune(r)
			} else {
				b.WriteByte('-')
			}
		}
	}
	return b.String()
}

// colourRange is the mapping from raw values to what the heatmap colours.
type colourRange struct {
	lo, hi float64 // raw values at the ends of the colour bar
	log    bool
}

// newColourRange spans the finite values from their minimum to the clip
// percentile. On a log scale the low end is the smallest positive value, as a
// zero has no logarithm; with no positive value it stays linear.
func newColourRange(values []float64, v View) colourRange {
	finite := make([]float64, 0, len(values))
	for _, x := range values {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			finite = append(finite, x)
		}
	}
	if len(finite) == 0 {
		return colourRange{lo: 0, hi: 1}
	}
	slices.Sort(finite)
	r := colourRange{lo: finite[0], hi: Percentile(finite, v.Clip)}
	if v.Scale == "log" {
		i, _ := slices.BinarySearchFunc(finite, 0.0, func(a, b float64) int {
			if a <= b {
				return -1
			}
			return 1
		})
		if i < len(finite) && r.hi > 0 {
			r.lo, r.log = finite[i], true
		}
	}
	if r.hi <= r.lo {
		r.hi = r.lo + 1e-12
		if r.log {
			r.hi = r.lo * 1.0001
		}
	}
	return r
}

// Percentile is the nearest-rank p-th percentile of sorted values.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// shown is the value the colour encodes: clipped into the range, and its
// logarithm on a log scale.
func (r colourRange) shown(x float64) float32 {
	x = min(max(x, r.lo), r.hi)
	if r.log {
		return float32(math.Log10(x))
	}
	return float32(x)
}

// visualMapOption is the colour bar as the option carries it. go-echarts'
// VisualMap has no precision, and ECharts' default of 0 decimals printed both
// handles of a 0.001–0.05 range as "0": the precision here shows the ends to
// four significant digits (common.js adds a formatter that turns a log scale's
// exponents back into values), and the end texts are the exact raw values.
// It is a list of one, as go-echarts writes the option.
func (r colourRange) visualMapOption(stops []string) []map[string]any {
	lo, hi := r.shown(r.lo), r.shown(r.hi)
	return []map[string]any{{
		"type": "continuous", "calculable": true,
		"min": lo, "max": hi, "dimension": 2, "precision": precisionFor(float64(lo), float64(hi)),
		"text":    []string{FormatValue(r.hi), FormatValue(r.lo)},
		"inRange": map[string]any{"color": stops},
		"orient":  "horizontal", "left": "center", "bottom": 0,
	}}
}

// precisionFor is how many decimals tell the ends of [lo, hi] apart with
// about four significant digits of the span.
func precisionFor(lo, hi float64) int {
	span := math.Abs(hi - lo)
	if span == 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 4
	}
	return min(12, max(0, 3-int(math.Floor(math.Log10(span)))))
}

// FormatValue prints a statistic with four significant digits.
func FormatValue(x float64) string {
	switch {
	case math.IsNaN(x):
		return "–"
	case x == 0:
		return "0"
	case math.Abs(x) >= 1e-3 && math.Abs(x) < 1e5:
		return trimFloat(x, 4)
	}
	return strings.Replace(strings.Replace(formatE(x), "e-0", "e-", 1), "e+0", "e+", 1)
}
