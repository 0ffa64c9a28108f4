package prune

import (
	"context"
	"fmt"
	"io"
)

// copyBlocks copies src to w one blockBytes block at a time, checking ctx
// before each: a cancelled export stops within a block (8 MiB) however large
// the tensor, where one io.Copy would run to its end. Each block is still one
// io.Copy, so a file-to-file copy keeps the kernel's fast path.
func copyBlocks(ctx context.Context, w io.Writer, src *io.SectionReader) (int64, error) {
	var n int64
	for size := src.Size(); n < size; {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := io.Copy(w, io.NewSectionReader(src, n, min(blockBytes, size-n)))
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

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
