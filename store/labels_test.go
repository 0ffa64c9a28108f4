package store

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDefaultName(t *testing.T) {
	for _, tc := range []struct {
		base, vla []string
		want      string
	}{
		{[]string{"/ckpt/prism-dinosiglip-224px+7b/checkpoints/latest-checkpoint.pt", "vision_backbone.featurizer.=/ckpt/dinov2.safetensors"},
			[]string{"/ckpt/openvla-7b"}, "openvla-7b vs prism-dinosiglip-224px+7b"},
		{[]string{"vision_backbone.featurizer.=/c/dinov2.safetensors", "/c/prism-dinosiglip.pt"}, []string{"/c/openvla-7b/model.safetensors.index.json"}, "openvla-7b vs prism-dinosiglip"},
		{[]string{"/hf/models--google--paligemma-3b-pt-224/snapshots/0123abcd/"}, []string{"/hf/models--lerobot--pi05_base/snapshots/89ab/model.safetensors"}, "pi05_base vs paligemma-3b-pt-224"},
		{[]string{"base/prismatic.safetensors"}, []string{"demo/vla"}, "vla vs prismatic"},
		{nil, nil, "unnamed analysis"},
	} {
		if got := DefaultName(AnalysisRequest{Base: tc.base, VLA: tc.vla}); got != tc.want {
			t.Errorf("DefaultName(%q, %q) = %q, want %q", tc.base, tc.vla, got, tc.want)
		}
	}
}

func TestAnalysisLabels(t *testing.T) {
	db := mustOpen(t)
	ctx := context.Background()
	req := AnalysisRequest{Base: []string{"/m/prism-dinosiglip.pt"}, VLA: []string{"/m/openvla-7b"}}
	a, err := db.CreateAnalysis(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "openvla-7b vs prism-dinosiglip" || a.Named || len(a.Tags) != 0 || a.Tags == nil {
		t.Fatalf("unnamed analysis reads as %q named=%v tags=%#v", a.Name, a.Named, a.Tags)
	}
	b, err := db.CreateLabeled(ctx, req, Labels{Name: "  LIBERO run 3 ", Tags: []string{"libero", " LIBERO", "", "bf16"}})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "LIBERO run 3" || !b.Named || strings.Join(b.Tags, ",") != "libero,bf16" {
		t.Fatalf("labeled analysis reads as %q named=%v tags=%q", b.Name, b.Named, b.Tags)
	}
	// Renaming keeps the tags; retagging keeps the name; "" brings the default back.
	name := "run 3, rerun"
	if b, err = db.UpdateLabels(ctx, b.ID, &name, nil); err != nil || b.Name != name || len(b.Tags) != 2 {
		t.Fatalf("rename: %v %q %q", err, b.Name, b.Tags)
	}
	tags := []string{"keep"}
	if b, err = db.UpdateLabels(ctx, b.ID, nil, &tags); err != nil || b.Name != name || strings.Join(b.Tags, ",") != "keep" {
		t.Fatalf("retag: %v %q %q", err, b.Name, b.Tags)
	}
	empty := ""
	if b, err = db.UpdateLabels(ctx, b.ID, &empty, nil); err != nil || b.Named || b.Name != "openvla-7b vs prism-dinosiglip" {
		t.Fatalf("reset name: %v %q named=%v", err, b.Name, b.Named)
	}
	// The list carries labels too, and the filter reads name, tags and sources.
	list, err := db.List(ctx, 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %d", err, len(list))
	}
	if !list[0].MatchesFilter("KEEP openvla") || list[1].MatchesFilter("keep") || !list[1].MatchesFilter("prism-dino") {
		t.Errorf("filter: %q %q", list[0].Tags, list[1].Tags)
	}
	long := strings.Repeat("x", MaxNameLen+1)
	if _, err := db.UpdateLabels(ctx, b.ID, &long, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("an over-long name: %v", err)
	}
	if _, err := db.UpdateLabels(ctx, "nope", &name, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing analysis: %v", err)
	}
}
