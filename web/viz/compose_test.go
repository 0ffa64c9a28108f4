package viz

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/prune"
)

// The composer's charts come from here: per component, per layer (an empty
// slot where a component has no such layer) and the chosen module's unit map,
// each bin coloured by the fraction of its units pruned.
func TestComposeCharts(t *testing.T) {
	p := prune.Params{
		ByComponent: map[string]prune.Count{"llm": {Before: 1000, After: 750}, "vision.siglip": {Before: 400, After: 400}, "vla_only": {}},
		ByLayer: map[string][]prune.Count{
			"llm":           {{Before: 500, After: 250}, {Before: 500, After: 500}},
			"vision.siglip": {{Before: 400, After: 400}},
			"action":        {{Before: 0, After: 0}, {Before: 0}, {Before: 10, After: 5}},
		},
	}
	mods := []prune.ModuleUnits{{Module: "llm.ffn_channel", Layers: []int{0, 1}, Sizes: []int{300, 300}, Units: 600}}
	units := prune.UnitsPruned{"llm": {"ffn_channel": {0: {0, 1, 2, 3}, 1: {299}}}}
	c := ComposeCharts(p, units, mods, "llm.ffn_channel")

	bars := func(s Spec) []any {
		t.Helper()
		var o struct {
			Series []struct {
				Name string `json:"name"`
				Data []struct {
					Value any `json:"value"`
				} `json:"data"`
			} `json:"series"`
		}
		raw, _ := json.Marshal(s.Option)
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		var out []any
		for _, se := range o.Series {
			out = append(out, se.Name)
			for _, d := range se.Data {
				out = append(out, d.Value)
			}
		}
		return out
	}
	if got := bars(c.Components); len(got) != 3 || got[1] != 25.0 || got[2] != 0.0 {
		t.Errorf("components: %v, want pruned 25 (llm) and 0 (siglip); vla_only without parameters left out", got)
	}
	// Only components something is pruned in, sorted: action (layers 0..2, the
	// empty ones '-') then llm.
	got := bars(c.Layers)
	want := []any{"action", "-", "-", 50.0, "llm", 50.0, 0.0, "-"}
	if len(got) != len(want) {
		t.Fatalf("layers: %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("layers[%d] = %v, want %v (all %v)", i, got[i], want[i], got)
		}
	}
	if c.Layers.Meta.Unit != "%" || c.Components.Meta.Kind != "xy" {
		t.Errorf("meta: %+v", c.Layers.Meta)
	}

	// 300 units in at most 128 bins: 3 units a bin, 100 bins.
	if c.Mask == nil {
		t.Fatal("no mask chart for the chosen module")
	}
	m := c.Mask.Meta
	if m.Kind != "heatmap" || m.BinWidth != 3 || len(m.XLabels) != 100 || strings.Join(m.YLabels, ",") != "0,1" {
		t.Fatalf("mask meta: %+v", m)
	}
	raw, _ := json.Marshal(c.Mask.Option["series"])
	for _, cell := range []string{`[0,0,1,1]`, `[1,0,0.33333334,0.33333334]`, `[99,1,0.33333334,0.33333334]`, `[2,1,0,0]`} {
		if !strings.Contains(string(raw), cell) {
			t.Errorf("mask cell %s missing in %.300s", cell, raw)
		}
	}
	if ComposeCharts(p, units, mods, "vision.siglip.attn_head").Mask != nil {
		t.Error("a mask chart for a module the analysis lacks")
	}
}
