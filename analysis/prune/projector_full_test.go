package prune

import "testing"

// On the real OpenVLA-7B layout the projector family is one ranking of
// fc1's 8,704 and fc2's 4,096 output rows: 12,800 units (the authors'
// generate_pruning_masks concatenates both, as layers 1 and 2), int(12,800·0.3)
// = 3,840 of them cut across the two; fc3's rows (the LLM's input width) are
// never units.
func TestProjectorFamilyAtFullScale(t *testing.T) {
	res, vn := layoutResult(t, "openvla-7b", 1)
	r := Recipe{Name: "projector", Rules: []Rule{{Module: ModProjectorFFN, Ratio: 0.3, Direction: DirHighest}}}
	m, err := ResolveWith(res, r, Options{VLATensors: vn})
	if err != nil {
		t.Fatal(err)
	}
	st := m.Rules[0]
	if st.Units != 12_800 || st.Target != 3_840 || st.Pruned != 3_840 || len(st.Layers) != 2 ||
		st.Layers[0].Units != 8_704 || st.Layers[1].Units != 4_096 || st.Layers[0].Pruned+st.Layers[1].Pruned != 3_840 {
		t.Fatalf("projector family %+v, want 8,704 + 4,096 = 12,800 units and 3,840 cut", st)
	}
	// Each cut fc1 row takes fc2's column, each fc2 row fc3's column.
	fc1, fc2, fc3 := m.Tensor("projector.fc1.weight"), m.Tensor("projector.fc2.weight"), m.Tensor("projector.fc3.weight")
	if fc1 == nil || fc2 == nil || fc3 == nil || len(fc1.Rows) != st.Layers[0].Pruned || len(fc2.Cols) != len(fc1.Rows) ||
		len(fc2.Rows) != st.Layers[1].Pruned || len(fc3.Cols) != len(fc2.Rows) || len(fc3.Rows) != 0 {
		t.Errorf("cuts: fc1 %v, fc2 %v, fc3 %v", fc1 != nil, fc2 != nil, fc3 != nil)
	}
}
