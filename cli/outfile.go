package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeOutput fills the file at path (--json, --out). A regular file is
// written through a temporary file beside it and renamed into place, so a
// failed or interrupted run never leaves half a file. A path that names a
// device or a pipe (/dev/null, /dev/stdout, a FIFO) is written in place:
// renaming over it would replace the device with a plain file (once
// /dev/null, for every process on the machine). A symbolic link is followed,
// so the file it points to is replaced, not the link.
func writeOutput(ctx context.Context, path string, fill func(io.Writer) error) error {
	target := path
	if info, err := os.Stat(path); err == nil {
		if !info.Mode().IsRegular() {
			if info.IsDir() {
				return fmt.Errorf("%s: is a folder; name a file", path)
			}
			return writeInPlace(ctx, path, fill)
		}
		if resolved, err := filepath.EvalSymlinks(path); err == nil {
			target = resolved
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".tmp*")
	if err != nil {
		return fmt.Errorf("%s: %v", path, plainPathErr(err))
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		if ctx.Err() != nil {
			return fmt.Errorf("%s: interrupted (%v); nothing was written: %w", path, context.Cause(ctx), ctx.Err())
		}
		return fmt.Errorf("%s: writing: %v", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: writing: %v", path, err)
	}
	if err := ctx.Err(); err != nil { // a signal between the last block and the rename
		return fmt.Errorf("%s: interrupted (%v); nothing was written: %w", path, context.Cause(ctx), err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("%s: %v", path, plainPathErr(err))
	}
	return nil
}

// writeInPlace writes to a device or pipe, which has no "half a file" to avoid.
func writeInPlace(ctx context.Context, path string, fill func(io.Writer) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("%s: %v", path, plainPathErr(err))
	}
	if err := fill(f); err != nil {
		f.Close()
		if ctx.Err() != nil {
			return fmt.Errorf("%s: interrupted (%v): %w", path, context.Cause(ctx), ctx.Err())
		}
		return fmt.Errorf("%s: writing: %v", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: writing: %v", path, err)
	}
	return nil
}

// plainPathErr drops the operation and path an *os.PathError repeats, since the
// message already starts with the path the user gave.
func plainPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
