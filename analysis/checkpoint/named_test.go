package checkpoint

import (
	"slices"
	"testing"

	"github.com/deltascope/deltascope/internal/testfixtures"
)

// Named keeps the side's order, names and shapes: alignment indexes into it.
func TestSideNamed(t *testing.T) {
	side, err := OpenSide([]string{testfixtures.Path("pi05", "vla", "model.safetensors")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	named := side.Named()
	if len(named) == 0 || len(named) != len(side.Tensors) {
		t.Fatalf("%d named of %d tensors", len(named), len(side.Tensors))
	}
	for i, n := range named {
		if tt := side.Tensors[i]; n.Name != tt.Name || !slices.Equal(n.Shape, tt.Shape) {
			t.Fatalf("%d: %s %v, want %s %v", i, n.Name, n.Shape, tt.Name, tt.Shape)
		}
	}
	if got := Named(nil); got == nil || len(got) != 0 {
		t.Errorf("Named(nil) = %#v, want an empty list", got)
	}
}
