package prune

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cancelOnWrite cancels its context at the first write and counts every byte
// written after that: what an export keeps doing once its client is gone.
type cancelOnWrite struct {
	cancel func()
	n      int64
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.cancel()
	c.n += int64(len(p))
	return len(p), nil
}

// A copy stops at the first block boundary after its context is cancelled,
// however much is left; a plain io.Copy would write all four blocks.
func TestCopyBlocksStopsWithinABlock(t *testing.T) {
	data := make([]byte, 4*blockBytes)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelOnWrite{cancel: cancel}
	n, err := copyBlocks(ctx, w, io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n != blockBytes || w.n != blockBytes {
		t.Errorf("copied %d bytes (writer saw %d) after a cancel in the first block; want exactly one block, %d", n, w.n, blockBytes)
	}
	// Not cancelled: every byte, across block seams.
	var out bytes.Buffer
	src := bytes.Repeat([]byte{1, 2, 3}, blockBytes/2) // 1.5 blocks
	if n, err := copyBlocks(context.Background(), &out, io.NewSectionReader(bytes.NewReader(src), 0, int64(len(src)))); err != nil || n != int64(len(src)) || !bytes.Equal(out.Bytes(), src) {
		t.Errorf("uncancelled copy: %d bytes, %v, equal %v", n, err, bytes.Equal(out.Bytes(), src))
	}
}

// A folder export whose context is cancelled returns an *InterruptedError
// naming the folder and the cause, and leaves nothing: no folder, no
// temporary folder beside it.
func TestWriteFolderInterrupted(t *testing.T) {
	m, vla := exportMask(t), openFixtureVLA(t)
	defer vla.Close()
	for _, name := range []string{"masked", "sliced"} {
		t.Run(name, func(t *testing.T) {
			kind, err := LookupExport(name)
			if err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(errors.New("the user pressed Ctrl-C"))
			err = kind.WriteFolder(ctx, dir, m, vla)
			var ie *InterruptedError
			if !errors.As(err, &ie) || !errors.Is(err, context.Canceled) || ie.Path != dir {
				t.Fatalf("err = %#v, want an *InterruptedError for %s unwrapping to context.Canceled", err, dir)
			}
			if msg := err.Error(); !strings.Contains(msg, "the user pressed Ctrl-C") || !strings.Contains(msg, "removed") {
				t.Errorf("message %q does not say why and that the partial export is gone", msg)
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// Each streamed file of a folder export stops at the next tensor (or block)
// once its context is cancelled: a server's export stops with its client.
func TestEntriesStopWhenCancelled(t *testing.T) {
	m, vla := exportMask(t), openFixtureVLA(t)
	defer vla.Close()
	for _, name := range []string{"masked", "sliced"} {
		t.Run(name, func(t *testing.T) {
			kind, _ := LookupExport(name)
			entries, err := kind.EntriesContext(context.Background(), m, vla)
			if err != nil {
				t.Fatal(err)
			}
			e := entries[0] // the VLA's model.safetensors: many tensors
			if !strings.HasSuffix(e.Name, ".safetensors") {
				t.Fatalf("first entry is %s", e.Name)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w := &cancelOnWrite{cancel: cancel}
			err = e.Write(ctx, w)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if w.n >= e.Size/2 {
				t.Errorf("wrote %d of %d bytes after the cancel", w.n, e.Size)
			}
		})
	}
}

// The file exports that can take long (indices and masks of a 7B model) check
// their context too.
func TestFileKindsStopWhenCancelled(t *testing.T) {
	m, vla := exportMask(t), openFixtureVLA(t)
	defer vla.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteIndices(ctx, io.Discard, m); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteIndices: %v", err)
	}
	if err := WriteMasks(ctx, io.Discard, m, vla); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteMasks: %v", err)
	}
}
