package viz

import (
	"encoding/json"
	"math"
	"net/url"
	"strings"
	"testing"

	"github.com/go-echarts/go-echarts/v2/opts"

	"github.com/deltascope/deltascope/analysis"
)

func stats(name, comp, kind string, layer int, rel float64) analysis.TensorStats {
	shape := []int64{8, 4} // a weight matrix, unless its kind says otherwise
	switch kind {
	case "norm", "bias", "layer_scale":
		shape = []int64{4}
	case "token":
		shape = []int64{1, 1, 4}
	}
	return analysis.TensorStats{VLA: name, Base: name, Component: comp, Kind: kind, Layer: layer, Numeric: true, ShapeVLA: shape,
		RelDelta: analysis.Num(rel), FroDelta: analysis.Num(rel * 10), Cosine: analysis.Num(1 - rel/100), ChangedFraction: 1}
}

func TestParseViewDefaultsAndRoundTrip(t *testing.T) {
	for _, c := range []struct {
		query string
		want  View
	}{
		{"", View{MetricRelative, "linear", "viridis", 98, true}},
		{"metric=cos&scale=log&palette=cividis&clip=90", View{MetricCosine, "log", "cividis", 90, true}},
		{"metric=bogus&scale=x&palette=<script>&clip=12", View{MetricRelative, "linear", "viridis", 98, true}},
		{"clip=100.5", View{MetricRelative, "linear", "viridis", 98, true}},
		// The controls' hidden field sends 0, the ticked checkbox 1 after it.
		{"weights=0", View{MetricRelative, "linear", "viridis", 98, false}},
		{"weights=0&weights=1", View{MetricRelative, "linear", "viridis", 98, true}},
	} {
		t.Run(c.query, func(t *testing.T) {
			q, _ := url.ParseQuery(c.query)
			got := ParseView(q)
			if got != c.want {
				t.Fatalf("ParseView(%q) = %+v, want %+v", c.query, got, c.want)
			}
			back := url.Values{}
			got.Set(back)
			if again := ParseView(back); again != got {
				t.Errorf("round trip %+v → %s → %+v", got, back.Encode(), again)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{98, 10}, {50, 5}, {90, 9}, {0, 1}, {100, 10}} {
		if got := Percentile(v, c.p); got != c.want {
			t.Errorf("Percentile(%g) = %g, want %g", c.p, got, c.want)
		}
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("percentile of nothing should be NaN")
	}
}

func TestColourRangeClipsAndLogs(t *testing.T) {
	vals := make([]float64, 100)
	for i := range vals {
		vals[i] = float64(i + 1)
	}
	vals[99] = 1e6 // an outlier the clip must ignore
	r := newColourRange(vals, View{Scale: "linear", Clip: 98})
	if r.lo != 1 || r.hi != 98 || r.shown(1e6) != 98 {
		t.Errorf("linear range %+v, outlier shown as %g", r, r.shown(1e6))
	}
	r = newColourRange(append(vals, 0, math.NaN()), View{Scale: "log", Clip: 100})
	if !r.log || r.lo != 1 || r.shown(1000) != 3 || r.shown(0) != 0 {
		t.Errorf("log range %+v: shown(1000)=%g shown(0)=%g", r, r.shown(1000), r.shown(0))
	}
	if r := newColourRange([]float64{0, 0}, View{Scale: "log", Clip: 98}); r.log || r.hi <= r.lo {
		t.Errorf("all-zero values must stay linear with a non-empty range: %+v", r)
	}
}

func TestModuleHeatmap(t *testing.T) {
	ts := []analysis.TensorStats{
		stats("m.layers.0.self_attn.q_proj.weight", "llm", "attn_q", 0, 0.1),
		stats("m.layers.1.self_attn.q_proj.weight", "llm", "attn_q", 1, 0.3),
		stats("m.layers.0.mlp.gate_proj.weight", "llm", "ffn_gate", 0, 0.2),
		stats("m.layers.0.input_layernorm.weight", "llm", "norm", 0, 0.01),
		stats("m.layers.0.post_attention_layernorm.weight", "llm", "norm", 0, math.NaN()),
		stats("<script>alert(1)</script>", "llm", "ffn_up", 1, 0.5),
		stats("vision.blocks.0.attn.qkv.weight", "vision.dinov2", "attn_qkv", 0, 0.4),
	}
	all := ParseView(url.Values{"weights": {"0"}})
	c := ModuleHeatmap(ts, "llm", all, "/t/", "tab=overview")
	m := c.Spec.Meta
	if c.ID != "heatmap-llm" || m.Kind != "heatmap" {
		t.Errorf("id %q kind %q", c.ID, m.Kind)
	}
	if strings.Join(m.XLabels, ",") != "0,1" {
		t.Errorf("layers %v", m.XLabels)
	}
	wantRows := "attn_q,ffn_gate,ffn_up,norm · input_layernorm,norm · post_attention_layernorm"
	if strings.Join(m.YLabels, ",") != wantRows {
		t.Errorf("rows %v, want %s", m.YLabels, wantRows)
	}
	// 6 llm tensors, one with no value: 5 coloured cells.
	data := c.Spec.Option["series"].([]heatSeries)[0].Data.([]opts.HeatMapData)
	if len(data) != 5 {
		t.Errorf("%d cells, want 5", len(data))
	}
	if m.Names["1,2"] != "<script>alert(1)</script>" || m.Names["0,0"] != "m.layers.0.self_attn.q_proj.weight" || m.LinkBase != "/t/" || m.LinkQuery != "tab=overview" {
		t.Errorf("names %v, links %q ? %q", m.Names, m.LinkBase, m.LinkQuery)
	}
	raw, err := json.Marshal(c.Spec)
	if err != nil {
		t.Fatal(err)
	}
	js := string(raw)
	for _, want := range []string{`"xAxis":[{"type":"category","name":"layer","nameLocation":"middle","nameGap":24,"data":["0","1"]`, `"progressive":0`, `"visualMap"`, `#fde725`} {
		if !strings.Contains(js, want) {
			t.Errorf("option lacks %s:\n%s", want, js)
		}
	}
	if strings.Contains(js, "<script>") {
		t.Error("a tensor name went into the JSON unescaped")
	}
}

func TestUnitHeatmapBinsByMax(t *testing.T) {
	scores := make([]float32, 1000)
	scores[517] = 9 // one hot channel must survive binning
	us := []analysis.UnitScores{
		{Component: "llm", Kind: "ffn_channel", Layer: 1, Metric: "relative", Variant: "openvla", Scores: scores},
		{Component: "llm", Kind: "ffn_channel", Layer: 0, Metric: "relative", Variant: "openvla", Scores: make([]float32, 1000)},
		{Component: "llm", Kind: "attn_head", Layer: 0, Scores: []float32{1, 2}},
	}
	c := UnitHeatmap(us, "llm", "ffn_channel", ParseView(nil), 256)
	m := c.Spec.Meta
	if m.BinWidth != 4 || len(m.XLabels) != 250 || strings.Join(m.YLabels, ",") != "0,1" {
		t.Fatalf("bin width %d, %d columns, rows %v", m.BinWidth, len(m.XLabels), m.YLabels)
	}
	data := c.Spec.Option["series"].([]heatSeries)[0].Data.([]opts.HeatMapData)
	if len(data) != 500 {
		t.Fatalf("%d cells", len(data))
	}
	// Layer 1 is the second row; channel 517 is in bin 129.
	hot := data[250+129].Value.([4]any)
	if hot[0] != 129 || hot[1] != 1 || hot[3] != float32(9) {
		t.Errorf("the hot channel's bin is %v", hot)
	}
	if cold := data[250+128].Value.([4]any); cold[3] != float32(0) {
		t.Errorf("a cold bin is %v", cold)
	}
}

func TestChannelsAndExtremes(t *testing.T) {
	cs := Channels([]float32{1, 4, 2, 0}, []float32{10, 10, 1, 5})
	if len(cs) != 4 || cs[2].Rel < 1.99 || cs[2].Rel > 2.01 {
		t.Fatalf("channels %+v", cs)
	}
	top, bottom := Extremes(cs, 2)
	if top[0].Index != 2 || top[1].Index != 1 || bottom[0].Index != 3 || bottom[1].Index != 0 {
		t.Errorf("top %+v bottom %+v", top, bottom)
	}
	if top, _ := Extremes(cs, 10); len(top) != 4 {
		t.Errorf("asking for more than there are: %d", len(top))
	}
}

func TestHeadBars(t *testing.T) {
	cs := Channels([]float32{3, 4, 0, 0, 1, 0}, nil)
	c, ok := HeadBars("h", cs, 2, false)
	if !ok {
		t.Fatal("no head chart")
	}
	js, _ := json.Marshal(c.Spec.Option)
	if !strings.Contains(string(js), `"data":[{"value":5},{"value":0},{"value":1}]`) || !strings.Contains(string(js), `"data":["0","1","2"]`) {
		t.Errorf("head norms: %s", js)
	}
	c, _ = HeadBars("h", cs, 1, true)
	if js, _ := json.Marshal(c.Spec.Option); !strings.Contains(string(js), `["q0","q1","k0","k1","v0","v1"]`) {
		t.Errorf("fused qkv labels: %s", js)
	}
	if _, ok := HeadBars("h", cs, 4, false); ok {
		t.Error("6 channels cannot be heads of 4")
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{FormatValue(0.012345), "0.01235"}, {FormatValue(1.5e-7), "1.500e-7"}, {FormatValue(math.NaN()), "–"},
		{FormatValue(0), "0"}, {FormatCount(7541237184), "7.54 B"}, {FormatCount(470_000_000), "470 M"},
		{FormatBytes(1536), "1.5 KiB"}, {FormatBytes(12), "12 B"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
