package analysis

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// The preview, from headers alone, lists apart exactly what the analysis of
// the same pair lists, in the same words, and aligns as many pairs as it
// compares (the π0.5 fixture has VLA-only tensors and a resized vocabulary).
func TestPreviewMatchesAnalysis(t *testing.T) {
	base, err := checkpoint.OpenSide([]string{filepath.Join(fixtures, "pi05", "base")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	vla, err := checkpoint.OpenSide([]string{filepath.Join(fixtures, "pi05", "vla", "model.safetensors")}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer vla.Close()
	p, err := PreviewAlignment(base, vla, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Analyze(context.Background(), base, vla, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.BaseTensors != len(base.Tensors) || p.VLATensors != len(vla.Tensors) || p.Aligned != len(res.Tensors) {
		t.Errorf("preview counts %d/%d/%d, want %d/%d/%d", p.BaseTensors, p.VLATensors, p.Aligned, len(base.Tensors), len(vla.Tensors), len(res.Tensors))
	}
	if len(p.VLAOnly) == 0 || !reflect.DeepEqual(p.VLAOnly, res.VLAOnly) || !reflect.DeepEqual(p.BaseOnly, res.BaseOnly) {
		t.Errorf("only-lists differ: preview %d/%d, analysis %d/%d", len(p.BaseOnly), len(p.VLAOnly), len(res.BaseOnly), len(res.VLAOnly))
	}
	if !reflect.DeepEqual(p.Ambiguous, res.Ambiguous) {
		t.Errorf("ambiguous: preview %v, analysis %v", p.Ambiguous, res.Ambiguous)
	}
	// The analysis sorts its mismatches by VLA name; the preview lists the
	// shape mismatches, then the overlaps. Compare as sets.
	byVLA := func(ms []Mismatch) map[string]Mismatch {
		out := map[string]Mismatch{}
		for _, m := range ms {
			out[m.VLA] = m
		}
		return out
	}
	if got, want := byVLA(p.Mismatched), byVLA(res.Mismatched); len(want) == 0 || !reflect.DeepEqual(got, want) {
		t.Errorf("mismatched: preview %+v, analysis %+v", p.Mismatched, res.Mismatched)
	}
	n := 0
	for _, c := range p.PairsByRule {
		n += c
	}
	if n != p.Aligned {
		t.Errorf("pairs by rule add up to %d, aligned %d", n, p.Aligned)
	}

	if _, err := PreviewAlignment(base, vla, []string{"(=>x"}); err == nil || !strings.Contains(err.Error(), "--map") {
		t.Errorf("a bad map rule: %v", err)
	}
}

func TestOverlapRows(t *testing.T) {
	for _, c := range []struct {
		b, v []int64
		want int64
	}{
		{[]int64{257216, 2048}, []int64{257152, 2048}, 257152},
		{[]int64{32000, 4096}, []int64{32064, 4096}, 32000},
		{[]int64{32000}, []int64{32064}, 1},
		{[]int64{0, 8}, []int64{4, 8}, 0},
	} {
		if got := overlapRows(c.b, c.v); got != c.want {
			t.Errorf("overlapRows(%v, %v) = %d, want %d", c.b, c.v, got, c.want)
		}
	}
}
