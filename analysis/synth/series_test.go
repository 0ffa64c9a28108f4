package synth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/synth"
)

func openSide(t *testing.T, dir string, specs []string) *checkpoint.Side {
	t.Helper()
	abs := make([]string, len(specs))
	for i, s := range specs {
		if prefix, p, ok := strings.Cut(s, "="); ok {
			abs[i] = prefix + "=" + filepath.Join(dir, p)
		} else {
			abs[i] = filepath.Join(dir, s)
		}
	}
	side, err := checkpoint.OpenSide(abs, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { side.Close() })
	return side
}

// TestGenerateSeries writes a 4-checkpoint OpenVLA-shaped run and checks that
// it is one trajectory: the last checkpoint is byte for byte the VLA that
// Generate writes, each component's ΔW grows with the step at its own pace
// (the projector early, the language model late), and series.json lists it.
func TestGenerateSeries(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	o := synth.Options{Preset: "openvla-7b", Scale: 0.02, Out: filepath.Join(root, "run")}
	series, err := synth.GenerateSeries(ctx, o, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(series.Checkpoints) != 4 || series.Checkpoints[0].Step != 1000 || series.Checkpoints[3].Step != 4000 ||
		series.Checkpoints[3].VLA[0] != "checkpoint-4000" {
		t.Fatalf("series %+v", series)
	}
	data, err := os.ReadFile(filepath.Join(o.Out, "series.json"))
	if err != nil {
		t.Fatal(err)
	}
	var written synth.Series
	if err := json.Unmarshal(data, &written); err != nil || len(written.Checkpoints) != 4 || written.Base[0] != series.Base[0] {
		t.Fatalf("series.json: %v %s", err, data)
	}
	// POST /api/series refuses a body without a name: series.json carries the
	// folder's (the temporary one it was written under would be meaningless).
	if written.Name != "run" || series.Name != "run" {
		t.Errorf("series named %q, series.json %q; want the folder's name, run", series.Name, written.Name)
	}

	pairOpt := o
	pairOpt.Out = filepath.Join(root, "pair")
	if _, err := synth.Generate(ctx, pairOpt); err != nil {
		t.Fatal(err)
	}
	last := filepath.Join(o.Out, "checkpoint-4000")
	entries, err := os.ReadDir(filepath.Join(pairOpt.Out, "vla"))
	if err != nil || len(entries) == 0 {
		t.Fatal(err)
	}
	for _, e := range entries {
		a, _ := os.ReadFile(filepath.Join(pairOpt.Out, "vla", e.Name()))
		b, err := os.ReadFile(filepath.Join(last, e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: the last checkpoint differs from Generate's VLA (%v)", e.Name(), err)
		}
	}

	base := openSide(t, o.Out, series.Base)
	rel := map[string][]float64{} // component → ‖ΔW‖ per step
	for _, c := range series.Checkpoints {
		res, err := analysis.Analyze(ctx, base, openSide(t, o.Out, c.VLA), analysis.Options{Exact: true})
		if err != nil {
			t.Fatal(err)
		}
		dd := map[string]float64{}
		for _, ts := range res.Tensors {
			if ts.Numeric {
				dd[ts.Component] += float64(ts.FroDelta) * float64(ts.FroDelta)
			}
		}
		for comp, v := range dd {
			rel[comp] = append(rel[comp], math.Sqrt(v))
		}
	}
	for comp, v := range rel {
		if v[3] == 0 {
			continue // frozen
		}
		for i := 1; i < len(v); i++ {
			if v[i] <= v[i-1] {
				t.Errorf("%s: ‖ΔW‖ does not grow with the step: %v", comp, v)
			}
		}
	}
	// At a quarter of the run the projector has moved about half way
	// (√¼) and the language model about a sixteenth (¼²).
	if f := rel["projector"][0] / rel["projector"][3]; math.Abs(f-0.5) > 0.05 {
		t.Errorf("projector at step 1 of 4: %.3f of its final ΔW, want ≈ 0.5", f)
	}
	if f := rel["llm"][0] / rel["llm"][3]; math.Abs(f-1.0/16) > 0.03 {
		t.Errorf("llm at step 1 of 4: %.3f of its final ΔW, want ≈ 0.0625", f)
	}
}

func TestGenerateSeriesRefuses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		o    synth.Options
		n    int
		want string
	}{
		{"no steps", synth.Options{Preset: "tinyllama", Scale: 0.02, Out: filepath.Join(dir, "a")}, 0, "give 1 to"},
		{"too many", synth.Options{Preset: "tinyllama", Scale: 0.02, Out: filepath.Join(dir, "b")}, synth.MaxSeriesSteps + 1, "give 1 to"},
		{"shape only", synth.Options{Preset: "tinyllama", Scale: 0.02, Out: filepath.Join(dir, "c"), ShapeOnly: true}, 2, "shape-only"},
		{"folder exists", synth.Options{Preset: "tinyllama", Scale: 0.02, Out: dir}, 2, "already exists"},
		{"unknown preset", synth.Options{Preset: "gpt-5", Scale: 0.02, Out: filepath.Join(dir, "d")}, 2, "unknown preset"},
	} {
		if _, err := synth.GenerateSeries(ctx, tc.o, tc.n); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	// Cancelled: nothing is left behind.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	out := filepath.Join(dir, "cancelled")
	if _, err := synth.GenerateSeries(cctx, synth.Options{Preset: "tinyllama", Scale: 0.02, Out: out}, 2); err == nil {
		t.Fatal("a cancelled series was written")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*cancelled*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
