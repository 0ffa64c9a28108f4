package viz

import "testing"

// The y axis fits the success rates: 93–98 % fills the chart instead of
// sitting in its top twentieth.
func TestEvalChartFitsYAxis(t *testing.T) {
	for _, c := range []struct {
		name   string
		series []EvalSeries
		lo, hi float64
	}{
		{"high rates", []EvalSeries{{Benchmark: "libero_spatial", Points: []EvalPoint{{Params: 3e9, Success: 0.969, Baseline: true}, {Params: 2.5e9, Success: 0.933}}},
			{Benchmark: "libero_goal", Points: []EvalPoint{{Params: 3e9, Success: 0.98}}}}, 0.91, 1},
		{"low and high", []EvalSeries{{Benchmark: "b", Points: []EvalPoint{{Params: 1, Success: 0.1}, {Params: 2, Success: 0.9}}}}, 0, 1},
		{"middle", []EvalSeries{{Benchmark: "b", Points: []EvalPoint{{Params: 1, Success: 0.5}, {Params: 2, Success: 0.6}}}}, 0.48, 0.62},
		{"no points", nil, 0, 1},
	} {
		y := EvalChart("evals", c.series).Spec.Option["yAxis"].(map[string]any)
		if y["min"] != c.lo || y["max"] != c.hi {
			t.Errorf("%s: y axis %v..%v, want %v..%v", c.name, y["min"], y["max"], c.lo, c.hi)
		}
	}
}
