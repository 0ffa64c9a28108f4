package prune

import (
	"bytes"
	"context"
	"path/filepath"
	"sort"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// MaskedEntries and SlicedEntries stream exactly the files WriteMasked and
// WriteSliced write, byte for byte, each exactly as long as announced: for the
// single-file VLA and a sharded one.
func TestEntriesEqualWrittenExports(t *testing.T) {
	sharded := openSide(t, fixtures+"/base")
	shardedMask, err := Resolve(analyzeSelf(t, sharded), Recipe{Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.25, Direction: DirHighest}}})
	if err != nil {
		t.Fatal(err)
	}
	vla := openFixtureVLA(t)
	for _, c := range []struct {
		name   string
		m      *Mask
		side   *checkpoint.Side
		sliced bool
	}{
		{"masked single file", exportMask(t), vla, false}, {"masked sharded", shardedMask, sharded, false},
		{"sliced single file", exportMask(t), vla, true}, {"sliced sharded", shardedMask, sharded, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "export")
			write, list := WriteMasked, MaskedEntries
			if c.sliced {
				write, list = WriteSliced, SlicedEntries
			}
			if err := write(context.Background(), dir, c.m, c.side); err != nil {
				t.Fatal(err)
			}
			want := treeBytes(t, dir)
			entries, err := list(c.m, c.side)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				var b bytes.Buffer
				if err := e.Write(context.Background(), &b); err != nil {
					t.Fatalf("%s: %v", e.Name, err)
				}
				if int64(b.Len()) != e.Size {
					t.Errorf("%s: wrote %d bytes, announced %d", e.Name, b.Len(), e.Size)
				}
				if b.String() != want[e.Name] {
					t.Errorf("%s: streamed bytes differ from the written file", e.Name)
				}
				names = append(names, e.Name)
			}
			sort.Strings(names)
			if len(names) != len(want) {
				t.Errorf("streamed %v, the writer wrote %d files", names, len(want))
			}
		})
	}
}
