package prune

import (
	"strings"
	"testing"
)

// An OpenVLA preset on the π0.5 fixture: its DINOv2 rules name a module the
// model does not have, and the error says that (not "tensors without a base
// counterpart", which is about unmatched names).
func TestPresetForAnotherModel(t *testing.T) {
	res := fixtureResult(t)
	rc, err := Preset("openvla-light")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Resolve(res, rc)
	if err == nil {
		t.Fatal("an OpenVLA preset resolved on a π0.5 analysis")
	}
	msg := err.Error()
	if !strings.Contains(msg, "this analysis has no vision.dinov2 module") || strings.Contains(msg, "base counterpart") {
		t.Errorf("error %q; want it to say the analysis has no such module", msg)
	}
	// The π0.5 preset on the same analysis resolves.
	rc, _ = Preset("pi05-light")
	if _, err := Resolve(res, rc); err != nil {
		t.Errorf("pi05-light on the π0.5 fixture: %v", err)
	}
}
