package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenSeries: `gen --series N` writes a base and N checkpoints, says
// where, and leaves a series.json that POST /api/series takes as it is.
func TestGenSeries(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := runCLI(t, "", "gen", "--preset", "tinyllama", "--scale", "0.02", "--series", "2", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"base: base/model.safetensors", "step 1000: checkpoint-1000/", "step 2000: checkpoint-2000/"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "series.json"))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Name        string   `json:"name"`
		Base        []string `json:"base"`
		Checkpoints []struct {
			Step int64    `json:"step"`
			VLA  []string `json:"vla"`
		} `json:"checkpoints"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	if body.Name != "run" || len(body.Base) != 1 || len(body.Checkpoints) != 2 || body.Checkpoints[1].Step != 2000 {
		t.Errorf("series.json %s", data)
	}
	for _, c := range body.Checkpoints {
		if _, err := os.Stat(filepath.Join(out, c.VLA[0])); err != nil {
			t.Errorf("step %d: %v", c.Step, err)
		}
	}
	// A series needs values; the folder must be new.
	for _, args := range [][]string{
		{"gen", "--preset", "tinyllama", "--scale", "0.02", "--series", "2", "--shape-only", "--out", filepath.Join(t.TempDir(), "x")},
		{"gen", "--preset", "tinyllama", "--scale", "0.02", "--series", "2", "--out", out},
	} {
		if code, _, stderr := runCLI(t, "", args...); code == 0 || stderr == "" {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}
