package prune

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// copyRange gives the same bytes with the kernel's copy and through memory
// (another file system, an old kernel), across block seams and from an odd
// offset; it stops before the next block once cancelled, and a source
// shorter than the range is an error, not a short file.
func TestCopyRange(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 2*blockBytes+12345)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	srcPath := filepath.Join(dir, "src")
	if err := os.WriteFile(srcPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(srcPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, noCopy := range []bool{false, true} {
		out, err := os.Create(filepath.Join(dir, "out"))
		if err != nil {
			t.Fatal(err)
		}
		o := &fileOut{f: out, noCopy: noCopy}
		o.Write([]byte("head"))
		if err := o.copyRange(context.Background(), in, 3, int64(len(data))-3); err != nil {
			t.Fatalf("noCopy %v: %v", noCopy, err)
		}
		got := readAll(t, out.Name())
		if !bytes.Equal(got[:4], []byte("head")) || !bytes.Equal(got[4:], data[3:]) || o.pos != int64(len(got)) {
			t.Errorf("noCopy %v: %d bytes, pos %d, equal %v", noCopy, len(got), o.pos, bytes.Equal(got[4:], data[3:]))
		}

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		o = &fileOut{f: out, noCopy: noCopy}
		if err := o.copyRange(ctx, in, 0, int64(len(data))); !errors.Is(err, context.Canceled) || o.pos != 0 {
			t.Errorf("noCopy %v cancelled: %v after %d bytes", noCopy, err, o.pos)
		}
		o = &fileOut{f: out, noCopy: noCopy}
		if err := o.copyRange(context.Background(), in, int64(len(data))-10, 20); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("noCopy %v past the end: %v, want io.ErrUnexpectedEOF", noCopy, err)
		}
		out.Close()
		os.Remove(out.Name())
	}
}
