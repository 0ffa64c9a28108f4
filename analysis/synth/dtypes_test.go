package synth

import (
	"slices"
	"testing"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// The F32 variants of tinyllama (for timing each dtype pair) are the same
// tensors, names and shapes, stored as their names say on each side.
func TestTinyllamaDTypeVariants(t *testing.T) {
	refBase, refVLA, err := Layout("tinyllama", 0.05)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		preset    string
		base, vla tensor.DType
	}{{"tinyllama-f32-bf16", tensor.F32, tensor.BF16}, {"tinyllama-f32", tensor.F32, tensor.F32}} {
		t.Run(c.preset, func(t *testing.T) {
			base, vla, err := Layout(c.preset, 0.05)
			if err != nil {
				t.Fatal(err)
			}
			for _, side := range []struct {
				got, ref []File
				dtype    tensor.DType
			}{{base, refBase, c.base}, {vla, refVLA, c.vla}} {
				got, ref := shapesByName(t, side.got), shapesByName(t, side.ref)
				if len(got) != len(ref) || len(got) == 0 {
					t.Fatalf("%d tensors, want %d", len(got), len(ref))
				}
				for name, r := range ref {
					g, ok := got[name]
					if !ok || !slices.Equal(g.Shape, r.Shape) || g.DType != side.dtype {
						t.Errorf("%q: %v %v (present %v), want %v %v", name, g.DType, g.Shape, ok, side.dtype, r.Shape)
					}
				}
			}
		})
	}
}
