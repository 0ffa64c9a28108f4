package viz

import (
	"slices"
	"testing"

	"github.com/deltascope/deltascope/analysis/spectral"
)

// On the spectrum page as on the overview (issue 13), the embedding and
// lm_head are rows of the llm's map, each named for itself (both are of kind
// "embed"), instead of heatmaps of their own: 1×1 maps stretched to bars.
// Without an llm they keep their own maps.
func TestSpectrumEndsAreLLMRows(t *testing.T) {
	r := 3
	sp := spectral.Spectrum{SingularValues: []float64{1}, Energy: []float64{1}, Rank90: &r}
	ts := []spectral.Tensor{
		{VLA: "model.layers.0.self_attn.q_proj.weight", Component: "llm", Layer: 0, Kind: "attn_q", Spectrum: sp},
		{VLA: "model.embed_tokens.weight", Component: "embed", Layer: -1, Kind: "embed", Spectrum: sp},
		{VLA: "lm_head.weight", Component: "lm_head", Layer: -1, Kind: "embed", Spectrum: sp},
		{VLA: "blocks.0.mlp.fc1.weight", Component: "vision.siglip", Layer: 0, Kind: "ffn_fc1", Spectrum: sp},
	}
	if got := SpectrumHeatmapComponents(ts); !slices.Equal(got, []string{"llm", "vision.siglip"}) {
		t.Errorf("spectrum heatmaps %v, want llm and vision.siglip", got)
	}
	if got := SpectrumComponents(ts); !slices.Contains(got, "embed") || !slices.Contains(got, "lm_head") {
		t.Errorf("components %v: the summary still counts embed and lm_head", got)
	}
	c := SpectrumHeatmap(ts, 8, "llm", SpectralRank90, View{Scale: "linear", Palette: "viridis"}, "/t/", "")
	for _, want := range []string{"embed_tokens", "lm_head", "attn_q"} {
		if !slices.Contains(c.Spec.Meta.YLabels, want) {
			t.Errorf("llm spectrum rows %v lack %q", c.Spec.Meta.YLabels, want)
		}
	}
	if slices.Contains(c.Spec.Meta.YLabels, "embed") {
		t.Errorf("llm spectrum rows %v: a row called by the kind, not the tensor", c.Spec.Meta.YLabels)
	}
	if got := SpectrumHeatmapComponents(ts[1:3]); !slices.Equal(got, []string{"embed", "lm_head"}) {
		t.Errorf("without an llm: heatmaps %v, want embed and lm_head", got)
	}
}
