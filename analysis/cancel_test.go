package analysis

import (
	"context"
	"errors"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/synth"
)

// An analysis cancelled while it reads (at its first progress report, about
// 100 ms in) returns context.Canceled without reading the rest of the pair:
// what Ctrl-C, a cancelled server job and a shutdown rely on. The pair is a
// full-size OpenVLA-7B one as sparse files (shapes only), seconds of reading.
func TestAnalyzeStopsWhenCancelled(t *testing.T) {
	dir := t.TempDir()
	if _, err := synth.Generate(context.Background(), synth.Options{Preset: "openvla-7b", Scale: 1, Out: dir, ShapeOnly: true}); err != nil {
		t.Fatal(err)
	}
	pair, err := synth.ReadPair(dir) // absolute paths
	if err != nil {
		t.Fatal(err)
	}
	open := func(specs []string) *checkpoint.Side {
		s, err := checkpoint.OpenSide(specs, checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	base, vla := open(pair.Base), open(pair.VLA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var at, last Progress
	res, err := Analyze(ctx, base, vla, Options{Progress: func(p Progress) {
		if at.BytesTotal == 0 && p.BytesDone > 0 {
			at = p
			cancel()
		}
		last = p
	}})
	if !errors.Is(err, context.Canceled) || res != nil {
		t.Fatalf("Analyze after its cancel: %v, %v; want context.Canceled and no result", res != nil, err)
	}
	if at.BytesTotal == 0 {
		t.Fatal("no progress was reported before the end")
	}
	if last.BytesDone >= last.BytesTotal {
		t.Errorf("read the whole pair (%d of %d bytes) after a cancel at %d", last.BytesDone, last.BytesTotal, at.BytesDone)
	}
	t.Logf("cancelled at %d MB of %d MB; stopped at %d MB", at.BytesDone>>20, at.BytesTotal>>20, last.BytesDone>>20)
}
