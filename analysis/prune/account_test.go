package prune

import (
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// TestVLATensorsCountsTiedOnce: two names over the same bytes of one file (a
// torch pickle's lm_head tied to embed_tokens) are one tensor for the
// accounting; equal shapes elsewhere in the file are not.
func TestVLATensorsCountsTiedOnce(t *testing.T) {
	shape := []int64{4, 2}
	side := &checkpoint.Side{Tensors: []*checkpoint.Tensor{
		{Name: "embed_tokens.weight", DType: tensor.F32, Shape: shape, File: "m.bin", Offset: 64, Size: 32},
		{Name: "lm_head.weight", DType: tensor.F32, Shape: shape, File: "m.bin", Offset: 64, Size: 32},
		{Name: "other.weight", DType: tensor.F32, Shape: shape, File: "m.bin", Offset: 96, Size: 32},
		{Name: "other.weight2", DType: tensor.F32, Shape: shape, File: "n.bin", Offset: 64, Size: 32},
	}}
	got := VLATensors(side)
	if len(got) != 3 || got[0].Name != "embed_tokens.weight" || got[1].Name != "other.weight" || got[2].Name != "other.weight2" {
		t.Fatalf("VLATensors = %+v, want the tied lm_head left out", got)
	}
	// The side's own totals (stored with every analysis) agree.
	if p, b := side.Params(), side.Bytes(); p != 24 || b != 96 {
		t.Errorf("Side.Params, Bytes = %d, %d; want 24, 96 (the tied matrix once)", p, b)
	}
}
