package viz

import (
	"cmp"
	"math"
	"slices"
)

// EvalPoint is one model's mean success on one benchmark: a recipe's pruned
// model, or the unpruned VLA (Baseline).
type EvalPoint struct {
	Label    string  `json:"label"`
	Params   int64   `json:"params"`  // parameters after pruning
	Success  float64 `json:"success"` // mean success rate, 0..1
	Results  int     `json:"results"` // how many results the mean is of
	Baseline bool    `json:"baseline,omitempty"`
}

// EvalSeries is one benchmark's points.
type EvalSeries struct {
	Benchmark string
	Points    []EvalPoint
}

// EvalChart plots success against parameters after pruning, one line per
// benchmark, points ordered by parameter count so each line reads as "what
// pruning more costs" (the paper's Tables 5/6 as a picture). The unpruned
// model is a point of every line, drawn larger.
func EvalChart(id string, series []EvalSeries) Chart {
	var most int64
	for _, s := range series {
		for _, p := range s.Points {
			most = max(most, p.Params)
		}
	}
	scale, unit := 1.0, ""
	switch {
	case most >= 1e9:
		scale, unit = 1e9, " (B)"
	case most >= 1e6:
		scale, unit = 1e6, " (M)"
	case most >= 1e4:
		scale, unit = 1e3, " (k)"
	}
	out := make([]map[string]any, 0, len(series))
	for _, s := range series {
		pts := slices.Clone(s.Points)
		slices.SortStableFunc(pts, func(a, b EvalPoint) int { return cmp.Compare(a.Params, b.Params) })
		data := make([]map[string]any, 0, len(pts))
		for _, p := range pts {
			d := map[string]any{"value": []any{round4(float64(p.Params) / scale), round4(p.Success), p.Label}}
			if p.Baseline {
				d["symbolSize"] = 14
				d["symbol"] = "diamond"
			}
			data = append(data, d)
		}
		out = append(out, map[string]any{"type": "line", "name": s.Benchmark, "data": data, "symbolSize": 8})
	}
	lo, hi := successRange(series)
	yAxis := map[string]any{"type": "value", "name": "success rate", "min": lo, "max": hi}
	option := map[string]any{
		"animation": false,
		"legend":    map[string]any{"top": 0, "type": "scroll"},
		"grid":      map[string]any{"left": 8, "right": 24, "top": 40, "bottom": 32, "containLabel": true},
		"tooltip":   map[string]any{"show": true, "trigger": "item"},
		// The axis name under the axis, centred: at its end it was cut to "para".
		"xAxis":  map[string]any{"type": "value", "name": "parameters" + unit, "nameLocation": "middle", "nameGap": 26, "scale": true},
		"yAxis":  yAxis,
		"series": out,
	}
	return Chart{ID: id, Title: "Success rate vs. parameters after pruning",
		Caption: "Each line is a benchmark; each point a recipe's mean success over its results; the diamond is the unpruned model.",
		Spec:    Spec{Option: option, Meta: Meta{Kind: "points", Value: "success rate", XName: "parameters" + unit, YName: "success rate", Height: 380}}}
}

// successRange is the y axis fitted to the success rates with a margin, in
// whole percent and within 0..1: a fixed 0..1 axis flattens 93–98 % into a
// line.
func successRange(series []EvalSeries) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, p := range s.Points {
			if !math.IsNaN(p.Success) {
				lo, hi = min(lo, p.Success), max(hi, p.Success)
			}
		}
	}
	if lo > hi {
		return 0, 1
	}
	pad := max(0.02, 0.15*(hi-lo))
	return max(0, math.Floor((lo-pad)*100)/100), min(1, math.Ceil((hi+pad)*100)/100)
}

func round4(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return math.Round(x*1e4) / 1e4
}
