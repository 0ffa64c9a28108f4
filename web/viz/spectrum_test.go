package viz

import (
	"math"
	"testing"

	"github.com/deltascope/deltascope/analysis/spectral"
)

func TestSpectralMetricValue(t *testing.T) {
	r := 3
	s := spectral.FromSingularValues([]float64{4, 2, 1, 1}, 16+4+1+1+2)
	s.Rank90 = &r
	if v := SpectralRank90.Value(s, 4); v != 3 {
		t.Errorf("rank90 %v", v)
	}
	s.Rank90 = nil
	if v := SpectralRank90.Value(s, 4); v != 5 {
		t.Errorf("rank90 beyond K shows as K+1: %v", v)
	}
	// Energy at 8 of a spectrum with 4 values: a matrix smaller than K=32
	// has them all, so its last energy holds.
	if v := SpectralEnergy8.Value(s, 32); v != s.Energy[3] {
		t.Errorf("energy8 of a small matrix %v", v)
	}
	// ... but with K=4 nothing is known past the 4th value.
	if v := SpectralEnergy8.Value(s, 4); !math.IsNaN(v) {
		t.Errorf("energy8 past K: %v", v)
	}
	if v := SpectralStableRank.Value(s, 4); v != 24.0/16 {
		t.Errorf("stable rank %v", v)
	}
	if ParseSpectralMetric("bogus") != SpectralRank90 || ParseSpectralMetric("energy16") != SpectralEnergy16 {
		t.Error("ParseSpectralMetric")
	}
}

func TestSpectrumHeatmapShowsQKVBlocks(t *testing.T) {
	r1, r2 := 1, 2
	sp := func(r *int) spectral.Spectrum {
		return spectral.Spectrum{SingularValues: []float64{1}, Energy: []float64{1}, Rank90: r}
	}
	ts := []spectral.Tensor{
		{VLA: "blocks.0.attn.qkv.weight", Component: "vision.dinov2", Layer: 0, Kind: "attn_qkv", Spectrum: sp(&r2)},
		{VLA: "blocks.0.attn.qkv.weight", Component: "vision.dinov2", Layer: 0, Kind: "attn_qkv", Block: "q", Spectrum: sp(&r1)},
		{VLA: "blocks.0.attn.qkv.weight", Component: "vision.dinov2", Layer: 0, Kind: "attn_qkv", Block: "k", Spectrum: sp(&r1)},
		{VLA: "blocks.0.attn.qkv.weight", Component: "vision.dinov2", Layer: 0, Kind: "attn_qkv", Block: "v", Spectrum: sp(nil)},
		{VLA: "blocks.0.mlp.fc1.weight", Component: "vision.dinov2", Layer: 0, Kind: "ffn_fc1", Spectrum: sp(&r2)},
		{VLA: "llm.0.q.weight", Component: "llm", Layer: 0, Kind: "attn_q", Spectrum: sp(&r1)},
	}
	c := SpectrumHeatmap(ts, 8, "vision.dinov2", SpectralRank90, View{Scale: "linear", Palette: "viridis"}, "/t/", "")
	want := []string{"attn_qkv · k", "attn_qkv · q", "attn_qkv · v", "ffn_fc1"}
	if len(c.Spec.Meta.YLabels) != len(want) {
		t.Fatalf("rows %v, want %v", c.Spec.Meta.YLabels, want)
	}
	for i, w := range want {
		if c.Spec.Meta.YLabels[i] != w {
			t.Errorf("row %d = %q, want %q", i, c.Spec.Meta.YLabels[i], w)
		}
	}
	if c.ID != "spectrum-vision-dinov2" || c.Spec.Meta.Names["0,0"] != "blocks.0.attn.qkv.weight" || c.Spec.Meta.Value != "rank for 90 % energy" {
		t.Errorf("chart %s names %v value %q", c.ID, c.Spec.Meta.Names, c.Spec.Meta.Value)
	}
}
