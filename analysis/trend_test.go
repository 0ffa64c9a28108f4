package analysis

import (
	"math"
	"testing"
)

func TestComponentNorms(t *testing.T) {
	ts := []TensorStats{
		{Component: "llm", Numeric: true, FroDelta: 3, FroBase: 30},
		{Component: "llm", Numeric: true, FroDelta: 4, FroBase: 40},
		{Component: "projector", Numeric: true, FroDelta: 0, FroBase: 10},
		{Component: "llm", Numeric: false, FroDelta: Num(math.NaN()), FroBase: Num(math.NaN())},
	}
	n := ComponentNorms(ts)
	if g := n["llm"]; g.Delta != 5 || g.Base != 50 || g.Rel() != 0.1 {
		t.Errorf("llm %+v rel %v", g, g.Rel())
	}
	if g := n["projector"]; g.Rel() != 0 {
		t.Errorf("unchanged projector: rel %v", g.Rel())
	}
	if g := n[""]; g.Delta != 5 || math.Abs(g.Base-math.Sqrt(2600)) > 1e-12 {
		t.Errorf("whole model %+v", g)
	}
}
