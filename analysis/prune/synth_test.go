package prune

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/synth"
)

// layoutResult builds, without any I/O, the Result an analysis of a synthetic
// pair would have: the real tensor names and shapes of a preset, aligned by
// arch.Align as the engine aligns them, with seeded random row and column
// norms. It also returns every VLA tensor, for exact parameter accounting.
func layoutResult(tb testing.TB, preset string, seed uint64) (*analysis.Result, []arch.Named) {
	tb.Helper()
	baseFiles, vlaFiles, err := synth.Layout(preset, 1)
	if err != nil {
		tb.Fatal(err)
	}
	named := func(files []synth.File) []arch.Named {
		var out []arch.Named
		for _, f := range files {
			for _, t := range f.Tensors {
				out = append(out, arch.Named{Name: f.Prefix + t.Name, Shape: t.Shape})
			}
		}
		return out
	}
	bn, vn := named(baseFiles), named(vlaFiles)
	al := arch.Align(bn, vn, nil)
	rng := rand.New(rand.NewPCG(seed, 7))
	norms := func(n int64, scale float32) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = scale * (0.5 + rng.Float32())
		}
		return s
	}
	res := &analysis.Result{EngineVersion: analysis.EngineVersion}
	for _, p := range al.Pairs {
		b, v := bn[p.Base], vn[p.VLA]
		c := arch.Classify(v.Name, v.Shape)
		ts := analysis.TensorStats{Base: b.Name, VLA: v.Name, Component: c.Component, Layer: c.Layer, Kind: c.Kind, Of: c.Of,
			ShapeBase: b.Shape, ShapeVLA: v.Shape, Numeric: true, Overlap: p.Overlap}
		if len(v.Shape) >= 2 {
			rows, cols := min(b.Shape[0], v.Shape[0]), elements(v.Shape[1:])
			ts.RowDelta, ts.RowBase = norms(rows, 0.01), norms(rows, 1)
			ts.ColDelta, ts.ColBase = norms(cols, 0.01), norms(cols, 1)
		}
		res.Tensors = append(res.Tensors, ts)
	}
	for _, i := range al.VLAOnly {
		res.VLAOnly = append(res.VLAOnly, vn[i].Name)
	}
	for _, m := range al.Mismatched {
		res.Mismatched = append(res.Mismatched, analysis.Mismatch{Base: bn[m.Base].Name, VLA: vn[m.VLA].Name,
			ShapeBase: bn[m.Base].Shape, ShapeVLA: vn[m.VLA].Shape, Reason: m.Reason})
	}
	for _, t := range bn {
		res.BaseParams += elements(t.Shape)
	}
	for _, t := range vn {
		res.VLAParams += elements(t.Shape)
	}
	res.Geometry, _ = arch.Geometries(nil, vn, nil)
	res.Units, _ = analysis.BuildUnits(res, analysis.ScoreDefault)
	return res, vn
}

// TestPresetParamsAtFullScale resolves the paper's Table 12 presets on the real
// OpenVLA-7B and π0.5 layouts. Counts are exact: every VLA tensor counts
// (embeddings, lm_head, vision, projector, the π0.5 action expert); a pruned
// FFN channel removes its gate and up rows and its down column (fc1 row, fc1
// bias entry and fc2 column in the vision encoders); a pruned head its q (or
// fused q, k, v) rows with their biases and its o columns, its own k/v rows
// where it has them (no GQA), and never the π0.5 Gemma's shared k/v (the
// authors' π0.5 rule). Every unit of a family then costs the same, so the
// counts do not depend on the (random) scores: they are the README's
// "Reproducing the paper" table. E.g. openvla-light removes 128 LLM heads ×
// 2,097,152 + 35,225 LLM channels × 12,288 + 54 SigLIP heads × 331,992 +
// 11,620 SigLIP channels × 2,305 + 24 DINOv2 heads × 262,336 + 9,830 DINOv2
// channels × 2,049 = 772,429,658.
func TestPresetParamsAtFullScale(t *testing.T) {
	want := map[string][2]int64{
		"openvla-light":      {7_541_237_184, 6_768_807_526},
		"openvla-moderate":   {7_541_237_184, 6_335_950_438},
		"openvla-aggressive": {7_541_237_184, 5_903_105_638},
		"pi05-light":         {3_616_757_520, 3_089_317_357},
		"pi05-moderate":      {3_616_757_520, 2_961_697_463},
		"pi05-aggressive":    {3_616_757_520, 2_599_305_911},
	}
	for _, layout := range []string{"openvla-7b", "pi05"} {
		res, vn := layoutResult(t, layout, 1)
		other, _ := layoutResult(t, layout, 2)
		for _, name := range Presets() {
			if !strings.HasPrefix(name, strings.TrimSuffix(layout, "-7b")) {
				continue
			}
			t.Run(name, func(t *testing.T) {
				r, err := Preset(name)
				if err != nil {
					t.Fatal(err)
				}
				m, err := ResolveWith(res, r, Options{VLATensors: vn})
				if err != nil {
					t.Fatal(err)
				}
				if got := [2]int64{m.Params.Before, m.Params.After}; got != want[name] {
					t.Errorf("params %d → %d, want %d → %d", got[0], got[1], want[name][0], want[name][1])
				}
				t.Logf("%s: %.3f B → %.3f B", name, float64(m.Params.Before)/1e9, float64(m.Params.After)/1e9)
				plain, err := Resolve(res, r)
				if err != nil || plain.Params.After != m.Params.After {
					t.Errorf("without VLA shapes: %v, after %d", err, plain.Params.After)
				}
				m2, err := Resolve(other, r)
				if err != nil || m2.Params.After != m.Params.After {
					t.Errorf("other scores: %v, after %d", err, m2.Params.After)
				}
			})
		}
	}
	if _, err := Preset("openvla-extreme"); err == nil {
		t.Error("unknown preset accepted")
	}
}

// BenchmarkResolveOpenVLA resolves the aggressive OpenVLA preset on a
// full-scale OpenVLA-7B result (~0.6 M units: 1,024 LLM heads, 352,256 LLM FFN
// channels, vision heads and channels).
func BenchmarkResolveOpenVLA(b *testing.B) {
	res, _ := layoutResult(b, "openvla-7b", 1)
	r, _ := Preset("openvla-aggressive")
	b.Run("preset", func(b *testing.B) {
		for b.Loop() {
			if _, err := Resolve(res, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A scoring the Result was not computed with: unit scores are rebuilt.
	mean := r
	mean.Rules = slices.Clone(r.Rules)
	for i := range mean.Rules {
		mean.Rules[i].Variant = "mean"
	}
	b.Run("rescored", func(b *testing.B) {
		for b.Loop() {
			if _, err := Resolve(res, mean); err != nil {
				b.Fatal(err)
			}
		}
	})
}
