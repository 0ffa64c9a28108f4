package spectral_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/spectral"
	"github.com/deltascope/deltascope/analysis/synth"
)

// benchScale shrinks every dimension of OpenVLA-7B (parameters by its square):
// 0.05 gives ~19 M parameters per side, enough for the products to dominate
// and small enough for the 2-core CI machine.
const benchScale = 0.05

// openVLAPair generates the OpenVLA-7B-shaped pair in a temporary folder
// (before the timed loop: b.Loop resets the timer) and opens both sides.
func openVLAPair(b *testing.B) (*checkpoint.Side, *checkpoint.Side) {
	b.Helper()
	dir := b.TempDir()
	pair, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: benchScale, Out: dir})
	if err != nil {
		b.Fatal(err)
	}
	abs := func(specs []string) []string {
		out := make([]string, len(specs))
		for i, s := range specs {
			if prefix, p, ok := strings.Cut(s, "="); ok {
				out[i] = prefix + "=" + filepath.Join(dir, p)
			} else {
				out[i] = filepath.Join(dir, s)
			}
		}
		return out
	}
	base, err := checkpoint.OpenSide(abs(pair.Base), checkpoint.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { base.Close() })
	vla, err := checkpoint.OpenSide(abs(pair.VLA), checkpoint.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { vla.Close() })
	return base, vla
}

// BenchmarkAnalyzeOpenVLA is the plain analysis of the pair: the yardstick
// the spectra's cost is reported against.
func BenchmarkAnalyzeOpenVLA(b *testing.B) {
	base, vla := openVLAPair(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := analysis.Analyze(context.Background(), base, vla, analysis.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(base.Bytes() + vla.Bytes())
}

// BenchmarkSpectraOpenVLA computes every spectrum of the pair at K = 32 with
// the default oversampling and power iterations.
func BenchmarkSpectraOpenVLA(b *testing.B) {
	base, vla := openVLAPair(b)
	b.ReportAllocs()
	var res *spectral.Result
	for b.Loop() {
		var err error
		if res, err = spectral.Compute(context.Background(), base, vla, spectral.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(base.Bytes() + vla.Bytes())
	b.ReportMetric(float64(len(res.Tensors)), "spectra")
}
