package viz

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
)

func ts(name, comp, kind string, layer int, rel float64) analysis.TensorStats {
	return analysis.TensorStats{VLA: name, Base: name, Component: comp, Kind: kind, Layer: layer, Numeric: true,
		RelDelta: analysis.Num(rel), FroDelta: analysis.Num(rel), FroBase: 1}
}

func TestCompareHeatmapsAlignAndDiffer(t *testing.T) {
	a := []analysis.TensorStats{ts("l0.q", "llm", "attn_q", 0, 0.1), ts("l1.q", "llm", "attn_q", 1, 0.2), ts("l0.g", "llm", "ffn_gate", 0, 0.3)}
	b := []analysis.TensorStats{ts("l0.q", "llm", "attn_q", 0, 0.4), ts("l1.q", "llm", "attn_q", 1, 0.2), ts("l2.q", "llm", "attn_q", 2, 0.9)}
	v := View{Metric: MetricRelative, Scale: "linear", Palette: "viridis", Clip: 100}
	ca, cb, cd := CompareHeatmaps(a, b, "llm", v, "/a/", "/b/", "")
	if got := ca.Spec.Meta.XLabels; len(got) != 3 || len(cb.Spec.Meta.YLabels) != 2 {
		t.Fatalf("grid x %v y %v, want the union: 3 layers, 2 modules", got, cb.Spec.Meta.YLabels)
	}
	if ra, rb := jsonOf(t, ca.Spec.Option["visualMap"]), jsonOf(t, cb.Spec.Option["visualMap"]); ra != rb || ra == "null" {
		t.Fatalf("the two maps have different colour ranges: %s vs %s", ra, rb)
	}
	// Only the two cells both have are in the difference: layer 0 q (+0.3) and layer 1 q (0).
	diffs := cellValues(t, cd)
	if len(diffs) != 2 || math.Abs(diffs["0,0"]-0.3) > 1e-6 || diffs["1,0"] != 0 {
		t.Fatalf("difference cells %v", diffs)
	}
	if cd.Caption == "" || !strings.Contains(cd.Caption, "1 only in a") || !strings.Contains(cd.Caption, "1 only in b") {
		t.Errorf("caption %q should count the missing cells", cd.Caption)
	}
}

func TestCellOf(t *testing.T) {
	list := []analysis.TensorStats{ts("m.layers.0.input_layernorm.weight", "llm", "norm", 0, 0.1), ts("m.layers.0.post_attention_layernorm.weight", "llm", "norm", 0, 0.1), ts("m.layers.0.q.weight", "llm", "attn_q", 0, 0.1)}
	comp, layer, module, ok := CellOf(list, "m.layers.0.post_attention_layernorm.weight")
	if !ok || comp != "llm" || layer != 0 || module != "norm · post_attention_layernorm" {
		t.Fatalf("CellOf = %q %d %q %v", comp, layer, module, ok)
	}
	if _, _, module, _ := CellOf(list, "m.layers.0.q.weight"); module != "attn_q" {
		t.Errorf("module %q", module)
	}
	if _, _, _, ok := CellOf(list, "nope"); ok {
		t.Error("an unknown tensor has a cell")
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cellValues maps "x,y" to the raw value of each drawn cell.
func cellValues(t *testing.T, c Chart) map[string]float64 {
	t.Helper()
	var opt struct {
		Series []struct {
			Data []struct{ Value [4]float64 } `json:"data"`
		} `json:"series"`
	}
	if err := json.Unmarshal([]byte(jsonOf(t, c.Spec.Option)), &opt); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, d := range opt.Series[0].Data {
		out[fmt.Sprintf("%g,%g", d.Value[0], d.Value[1])] = d.Value[3]
	}
	return out
}
