package checkpoint

import "testing"

func TestStepFromPath(t *testing.T) {
	for in, want := range map[string]int64{
		"/runs/a/checkpoint-1000":                  1000,
		"/runs/a/step_2000/model.safetensors":      2000,
		"llm.=/runs/global_step3000/model.bin":     3000,
		"/runs/ckpt-40/x.safetensors":              40,
		"/runs/checkpoint-1000/step_50/model.safe": 50,
	} {
		if got, ok := StepFromPath(in); !ok || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, ok, want)
		}
	}
	if _, ok := StepFromPath("/runs/final/model.safetensors"); ok {
		t.Error("a path without a step gave one")
	}
}
