// Package viz turns analysis results into chart options: it picks the values a
// view asks for (metric, scale, clipping, palette), lays them out as heatmaps,
// lines, bars and scatters with go-echarts, and returns the option as data for
// templ.JSONScript. Nothing here writes HTML or JavaScript, so a tensor name
// from an uploaded file is only ever a JSON string.
package viz

import (
	"math"
	"net/url"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/analysis"
)

// Metric names one per-tensor statistic a heatmap colours by.
type Metric string

const (
	MetricRelative Metric = "rel"
	MetricAbsolute Metric = "abs"
	MetricCosine   Metric = "cos"
	MetricMeanAbs  Metric = "mean"
	MetricChanged  Metric = "changed"
)

// Option is one choice of a selector: its URL value and its label.
type Option struct {
	Value, Label string
}

// Metrics lists the metric choices in the order the selector shows them.
var Metrics = []Option{
	{string(MetricRelative), "relative ΔW  (‖ΔW‖ / ‖W_base‖)"},
	{string(MetricAbsolute), "absolute ΔW  (‖ΔW‖)"},
	{string(MetricCosine), "1 − cosine"},
	{string(MetricMeanAbs), "mean |ΔW|"},
	{string(MetricChanged), "changed fraction"},
}

// Scales lists the colour scales.
var Scales = []Option{{"linear", "linear"}, {"log", "log₁₀"}}

// Palettes lists the colour-blind-safe palettes (perceptually uniform maps
// from matplotlib), nine stops each, low to high.
var Palettes = []Option{{"viridis", "viridis"}, {"cividis", "cividis"}, {"magma", "magma"}, {"greys", "greys"}}

var paletteStops = map[string][]string{
	"viridis": {"#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725"},
	"cividis": {"#00224e", "#123570", "#3b496c", "#575d6d", "#707173", "#8a8779", "#a69d75", "#c4b56c", "#fee838"},
	"magma":   {"#000004", "#1c1044", "#4f127b", "#812581", "#b5367a", "#e55064", "#fb8761", "#fec287", "#fcfdbf"},
	"greys":   {"#ffffff", "#f0f0f0", "#d9d9d9", "#bdbdbd", "#969696", "#737373", "#525252", "#252525", "#000000"},
}

// DefaultClip is the percentile the colour range is clipped at: the paper's
// figures clip at the 98th so one outlier tensor does not wash out the rest.
const DefaultClip = 98

// View is what a heatmap shows and how. It round-trips through the URL query so
// every view is a permalink.
type View struct {
	Metric  Metric
	Scale   string // linear | log
	Palette string
	Clip    float64 // percentile in [50, 100]
	// Weights keeps heatmaps and rankings to weight matrices (IsWeight): on
	// by default, since a few tokens, norms and biases that moved a lot
	// would otherwise set the colour scale and fill the tables.
	Weights bool
}

// ParseView reads a view from a query; anything missing or unknown falls back
// to the default, so a hand-edited URL still shows something sensible.
func ParseView(q url.Values) View {
	v := View{Metric: MetricRelative, Scale: "linear", Palette: "viridis", Clip: DefaultClip, Weights: true}
	// The controls send weights=0 from a hidden field and weights=1 from the
	// checkbox when ticked, so "off" is 0 without a 1.
	if ws, ok := q["weights"]; ok {
		v.Weights = slices.Contains(ws, "1")
	}
	if m := q.Get("metric"); isOption(Metrics, m) {
		v.Metric = Metric(m)
	}
	if s := q.Get("scale"); isOption(Scales, s) {
		v.Scale = s
	}
	if p := q.Get("palette"); isOption(Palettes, p) {
		v.Palette = p
	}
	if c, err := strconv.ParseFloat(q.Get("clip"), 64); err == nil && c >= 50 && c <= 100 {
		v.Clip = c
	}
	return v
}

// Set writes the view into q (the inverse of ParseView).
func (v View) Set(q url.Values) {
	q.Set("metric", string(v.Metric))
	q.Set("scale", v.Scale)
	q.Set("palette", v.Palette)
	q.Set("clip", strconv.FormatFloat(v.Clip, 'g', -1, 64))
	if !v.Weights {
		q.Set("weights", "0") // on is the default: links stay short
	} else {
		q.Del("weights")
	}
}

// IsWeight reports whether t is a weight matrix: numeric, at least two
// dimensions longer than 1, and not a token, position embedding, norm, bias
// or LayerScale (cls/register tokens are [1, n, d] tensors, not modules a
// mask prunes).
func IsWeight(t *analysis.TensorStats) bool {
	if !t.Numeric {
		return false
	}
	switch t.Kind {
	case "norm", "bias", "layer_scale", "token", "pos_embed":
		return false
	}
	long := 0
	for _, d := range t.ShapeVLA {
		if d > 1 {
			long++
		}
	}
	return long >= 2
}

func isOption(opts []Option, s string) bool {
	for _, o := range opts {
		if o.Value == s {
			return true
		}
	}
	return false
}

// MetricLabel is the human name of m.
func MetricLabel(m Metric) string {
	for _, o := range Metrics {
		if o.Value == string(m) {
			return o.Label
		}
	}
	return string(m)
}

// Value is the statistic of t that m names; NaN when t has none (a tensor that
// is not numeric has only a changed fraction).
func (m Metric) Value(t *analysis.TensorStats) float64 {
	if !t.Numeric && m != MetricChanged {
		return math.NaN()
	}
	switch m {
	case MetricAbsolute:
		return float64(t.FroDelta)
	case MetricCosine:
		return 1 - float64(t.Cosine)
	case MetricMeanAbs:
		return float64(t.MeanAbsDelta)
	case MetricChanged:
		return float64(t.ChangedFraction)
	default:
		return float64(t.RelDelta)
	}
}
