package viz

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/deltascope/deltascope/analysis"
)

// A ViT-and-Llama-shaped component list: a cls token and biases that moved far
// more than any weight matrix, plus the embedding and lm_head.
func weightsFixture() []analysis.TensorStats {
	return []analysis.TensorStats{
		stats("lm.layers.0.self_attn.q_proj.weight", "llm", "attn_q", 0, 0.010),
		stats("lm.layers.1.self_attn.q_proj.weight", "llm", "attn_q", 1, 0.030),
		stats("lm.layers.0.input_layernorm.weight", "llm", "norm", 0, 0.9),
		stats("lm.layers.1.self_attn.q_proj.bias", "llm", "bias", 1, 0.8),
		stats("lm.norm.weight", "llm", "norm", -1, 0.7),
		stats("lm.embed_tokens.weight", "embed", "embed", -1, 0.02),
		stats("lm.lm_head.weight", "lm_head", "embed", -1, 0.025),
		stats("v.cls_token", "vision.dinov2", "token", -1, 5),
		stats("v.blocks.0.attn.qkv.weight", "vision.dinov2", "attn_qkv", 0, 0.05),
	}
}

// Weights only (the default): the colour scale and the cells are the weight
// matrices'; tokens, norms and biases are left out, and the caption says so.
func TestModuleHeatmapWeightsOnly(t *testing.T) {
	ts := weightsFixture()
	v := ParseView(nil)
	if !v.Weights {
		t.Fatal("weights only must be the default")
	}
	c := ModuleHeatmap(ts, "llm", v, "/t/", "")
	data := c.Spec.Option["series"].([]heatSeries)[0].Data.([]opts.HeatMapData)
	if len(data) != 4 {
		t.Errorf("%d cells, want the 4 weight matrices (2 q_proj, embed, lm_head)", len(data))
	}
	vm := c.Spec.Option["visualMap"].([]map[string]any)[0]
	if vm["max"].(float32) > 0.031 || vm["min"].(float32) < 0.009 {
		t.Errorf("colour range %v..%v: the norms and biases set it", vm["min"], vm["max"])
	}
	if !strings.Contains(c.Caption, "3 tokens, norms and biases are left out") {
		t.Errorf("caption %q", c.Caption)
	}
	// Off: everything numeric, the norm's 0.9 reaches the top of the scale.
	v.Weights = false
	c = ModuleHeatmap(ts, "llm", v, "/t/", "")
	if n := len(c.Spec.Option["series"].([]heatSeries)[0].Data.([]opts.HeatMapData)); n != 7 {
		t.Errorf("%d cells with weights only off, want 7", n)
	}
	if strings.Contains(c.Caption, "left out") {
		t.Errorf("caption %q", c.Caption)
	}
}

// embed and lm_head are rows of the llm heatmap, each named for what it is,
// not 1×1 maps of their own; without an llm they keep their own maps.
func TestModuleHeatmapEnds(t *testing.T) {
	ts := weightsFixture()
	if got := strings.Join(HeatmapComponents(ts), ","); got != "llm,vision.dinov2" {
		t.Errorf("heatmaps for %s", got)
	}
	c := ModuleHeatmap(ts, "llm", ParseView(nil), "/t/", "")
	m := c.Spec.Meta
	if got := strings.Join(m.YLabels, ","); got != "attn_q,embed_tokens,lm_head" {
		t.Errorf("rows %s", got)
	}
	if got := strings.Join(m.XLabels, ","); got != "—,0,1" {
		t.Errorf("columns %s", got)
	}
	if m.Names["0,2"] != "lm.lm_head.weight" || m.Names["0,1"] != "lm.embed_tokens.weight" {
		t.Errorf("cells %v", m.Names)
	}
	alone := ts[5:7]
	if got := strings.Join(HeatmapComponents(alone), ","); got != "embed,lm_head" {
		t.Errorf("without an llm: heatmaps for %s", got)
	}
	if got := strings.Join(ModuleHeatmap(alone, "lm_head", ParseView(nil), "", "").Spec.Meta.YLabels, ","); got != "lm_head" {
		t.Errorf("lm_head's own row says %s", got)
	}
}

// The colour bar carries its exact ends as text and enough decimals for its
// handles (ECharts' default of 0 printed both as "0"); the x axis name sits
// under the labels, where the grid cannot cut it.
func TestHeatmapColourBarAndAxisNames(t *testing.T) {
	c := ModuleHeatmap(weightsFixture(), "llm", ParseView(nil), "/t/", "")
	vm := c.Spec.Option["visualMap"].([]map[string]any)[0]
	text := vm["text"].([]string)
	if text[0] != "0.03" || text[1] != "0.01" {
		t.Errorf("colour bar ends %q", text)
	}
	p := vm["precision"].(int)
	if p < 4 {
		t.Errorf("precision %d cannot tell 0.01 from 0.03 to four digits", p)
	}
	raw, _ := json.Marshal(c.Spec.Option)
	for _, want := range []string{`"nameLocation":"middle"`, `"calculable":true`, `"dimension":2`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("option lacks %s", want)
		}
	}
	for _, tc := range []struct {
		lo, hi float64
		want   int
	}{{0, 0.05, 5}, {0, 1, 3}, {-2, 1, 3}, {0, 1000, 0}, {1, 1, 4}, {0, math.Inf(1), 4}} {
		if got := precisionFor(tc.lo, tc.hi); got != tc.want {
			t.Errorf("precisionFor(%g, %g) = %d, want %d", tc.lo, tc.hi, got, tc.want)
		}
	}
}
