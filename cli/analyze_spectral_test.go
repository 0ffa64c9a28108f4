package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/internal/testfixtures"
	"github.com/deltascope/deltascope/store"
)

// TestAnalyzeSpectral runs `analyze --spectral --rank 4` on a generated
// OpenVLA-shaped pair (fused timm qkv in both vision encoders) and checks the
// JSON contract: every 2-D numeric tensor has a spectrum of K descending values
// with a non-decreasing energy curve; fused qkv weights have q, k, v blocks;
// vectors have none.
func TestAnalyzeSpectral(t *testing.T) {
	dir := t.TempDir()
	pair, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: 0.02, Out: dir})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"analyze", "--spectral", "--rank", "4", "--json", filepath.Join(dir, "out.json")}
	for _, s := range pair.Base {
		args = append(args, "--base", specIn(dir, s))
	}
	for _, s := range pair.VLA {
		args = append(args, "--vla", specIn(dir, s))
	}
	code, stdout, stderr := runCLI(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "spectra of ") || !strings.Contains(stdout, "within rank 4") {
		t.Errorf("no spectral summary in:\n%s", stdout)
	}
	data, err := os.ReadFile(filepath.Join(dir, "out.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Tensors []struct {
			VLA      string  `json:"vla"`
			Kind     string  `json:"kind"`
			Shape    []int64 `json:"shape_vla"`
			Numeric  bool    `json:"numeric"`
			FroDelta float64 `json:"fro_delta"`
			Spectrum *struct {
				SV     []float64 `json:"singular_values"`
				Energy []float64 `json:"energy"`
				Stable *float64  `json:"stable_rank"`
				Rank90 *int      `json:"rank90"`
			} `json:"spectrum"`
			Blocks []struct {
				Block string    `json:"block"`
				SV    []float64 `json:"singular_values"`
			} `json:"spectrum_blocks"`
		} `json:"tensors"`
		Spectral struct {
			Rank int `json:"rank"`
		} `json:"spectral"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if out.Spectral.Rank != 4 {
		t.Errorf("spectral.rank = %d", out.Spectral.Rank)
	}
	withSpectrum, qkv := 0, 0
	for _, ts := range out.Tensors {
		matrix := len(ts.Shape) == 2 && ts.Numeric
		if !matrix {
			if ts.Spectrum != nil {
				t.Errorf("%s (shape %v) has a spectrum", ts.VLA, ts.Shape)
			}
			continue
		}
		if ts.Spectrum == nil {
			t.Errorf("%s: 2-D tensor without a spectrum", ts.VLA)
			continue
		}
		withSpectrum++
		sp := ts.Spectrum
		if len(sp.SV) != int(min(4, ts.Shape[0], ts.Shape[1])) || len(sp.Energy) != len(sp.SV) {
			t.Errorf("%s: %d values, %d energies", ts.VLA, len(sp.SV), len(sp.Energy))
			continue
		}
		for i := 1; i < len(sp.SV); i++ {
			if sp.SV[i] > sp.SV[i-1] || sp.Energy[i] < sp.Energy[i-1] {
				t.Errorf("%s: values %v energies %v not ordered", ts.VLA, sp.SV, sp.Energy)
			}
		}
		if sp.Energy[len(sp.Energy)-1] > 1 || sp.Stable == nil {
			t.Errorf("%s: energy %v stable rank %v", ts.VLA, sp.Energy, sp.Stable)
		}
		// σ₁ ≤ ‖ΔW‖_F, equal only for rank one.
		if sp.SV[0] > ts.FroDelta*(1+1e-9) {
			t.Errorf("%s: σ₁ %g above ‖ΔW‖ %g", ts.VLA, sp.SV[0], ts.FroDelta)
		}
		if ts.Kind == "attn_qkv" {
			qkv++
			if len(ts.Blocks) != 3 || ts.Blocks[0].Block != "q" || ts.Blocks[2].Block != "v" || len(ts.Blocks[1].SV) == 0 {
				t.Errorf("%s: blocks %+v", ts.VLA, ts.Blocks)
			}
		} else if len(ts.Blocks) != 0 {
			t.Errorf("%s: blocks on a %s tensor", ts.VLA, ts.Kind)
		}
	}
	if withSpectrum < 100 || qkv == 0 {
		t.Errorf("%d tensors with a spectrum, %d fused qkv", withSpectrum, qkv)
	}
}

func TestAnalyzeRankWithoutSpectral(t *testing.T) {
	code, _, stderr := runCLI(t, "", "analyze", "--rank", "8",
		"--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors"))
	if code == 0 || !strings.Contains(stderr, "add --spectral") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestAnalyzeSpectralBadRank(t *testing.T) {
	code, _, stderr := runCLI(t, "", "analyze", "--spectral", "--rank", "100000",
		"--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors"))
	if code == 0 || !strings.Contains(stderr, "rank 100000") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// specIn makes a generated pair's spec relative to dir.
func specIn(dir, spec string) string {
	if prefix, p, ok := strings.Cut(spec, "="); ok {
		return prefix + "=" + filepath.Join(dir, p)
	}
	return filepath.Join(dir, spec)
}

// TestAnalyzeSpectralCached: with --data the spectra are stored with the
// analysis, where the server finds them, and a second run reads them back.
func TestAnalyzeSpectralCached(t *testing.T) {
	data := t.TempDir()
	out1, out2 := filepath.Join(t.TempDir(), "1.json"), filepath.Join(t.TempDir(), "2.json")
	args := func(out string) []string {
		return []string{"analyze", "--spectral", "--rank", "4", "--data", data, "--json", out,
			"--base", testfixtures.Path("pi05", "base"), "--vla", testfixtures.Path("pi05", "vla", "model.safetensors")}
	}
	if code, _, stderr := runCLI(t, "", args(out1)...); code != 0 {
		t.Fatalf("first run: %s", stderr)
	}
	ctx := context.Background()
	db, err := store.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	list, err := db.List(ctx, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("analyses %v %v", list, err)
	}
	first, err := db.SpectrumOf(ctx, list[0].ID, 4, true)
	db.Close()
	if err != nil || first.Status != store.StatusDone || first.Result == nil || len(first.Result.Tensors) < 30 {
		t.Fatalf("stored spectrum %+v, %v", first, err)
	}
	if code, _, stderr := runCLI(t, "", args(out2)...); code != 0 {
		t.Fatalf("second run: %s", stderr)
	}
	db, err = store.Open(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	second, err := db.SpectrumOf(ctx, list[0].ID, 4, true)
	if err != nil || !second.FinishedAt.Equal(*first.FinishedAt) {
		t.Errorf("the second run recomputed the spectra (finished %v, then %v; %v)", first.FinishedAt, second.FinishedAt, err)
	}
	a, _ := os.ReadFile(out1)
	b, _ := os.ReadFile(out2)
	if !strings.Contains(string(a), `"spectrum"`) || string(a) != string(b) {
		t.Error("the cached run's JSON differs from the first")
	}
}
