package prune

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// copyBlocks copies src to w one blockBytes block at a time, checking ctx
// before each: a cancelled export stops within a block (8 MiB) however large
// the tensor, where one io.Copy would run to its end. Each block is one read
// and one write (io.Copy from a SectionReader went in 32 KiB rounds: no
// kernel fast path applies to it); local files written to disk take
// fastcopy.go instead.
func copyBlocks(ctx context.Context, w io.Writer, src *io.SectionReader) (int64, error) {
	bp := blockPool.Get().(*[]byte)
	defer blockPool.Put(bp)
	var n int64
	for size := src.Size(); n < size; {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		b := (*bp)[:min(blockBytes, size-n)]
		if r, err := src.ReadAt(b, n); err != nil && (r < len(b) || !errors.Is(err, io.EOF)) { // a full read may say EOF at the end
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		k, err := w.Write(b)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// blockPool holds copyBlocks' buffers: a server streaming several exports
// reuses them instead of allocating 8 MiB per tensor.
var blockPool = sync.Pool{New: func() any { b := make([]byte, blockBytes); return &b }}

// InterruptedError is an export stopped by its context (Ctrl-C, a client that
// went away). What it had written is already removed when it is returned. It
// unwraps to the context's error (context.Canceled or DeadlineExceeded).
type InterruptedError struct {
	Path  string // the export that was asked for
	Cause error  // context.Cause: the signal, the disconnect, the deadline
	err   error  // ctx.Err()
}

func (e *InterruptedError) Error() string {
	return fmt.Sprintf("%s: interrupted (%v); the partial export was removed", e.Path, e.Cause)
}

func (e *InterruptedError) Unwrap() []error { return []error{e.err, e.Cause} }

// interrupted is the error of an export to path that ctx stopped.
func interrupted(ctx context.Context, path string) error {
	return &InterruptedError{Path: path, Cause: context.Cause(ctx), err: ctx.Err()}
}
