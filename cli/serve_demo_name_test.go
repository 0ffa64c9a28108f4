package cli

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/jobs"
	"github.com/deltascope/deltascope/store"
)

// The demo analysis is named for what it is, not "vla vs prismatic" from its
// file names, and tagged "demo" so a filter can hide it.
func TestDemoAnalysisIsNamed(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "demo")
	if _, err := synth.Generate(ctx, synth.Options{Preset: "tinyllama", Scale: 0.01, Out: dir, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ensureDemo(ctx, db, jobs.New(db, jobs.Options{Roots: []string{dir}, Log: log}), dir, log)
	list, err := db.List(ctx, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("analyses after ensureDemo: %d (%v)", len(list), err)
	}
	if a := list[0]; !a.Named || !strings.HasPrefix(a.Name, "demo: ") || strings.Join(a.Tags, ",") != "demo" {
		t.Errorf("the demo analysis is %q (named %v), tags %q", a.Name, a.Named, a.Tags)
	}
}
