package prune

import (
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// DiskFullError is a checkpoint export that ran out of disk space (or quota).
// Its partial folder is already removed when it is returned. It unwraps to the
// errno (syscall.ENOSPC or syscall.EDQUOT) — not to a *tensor.Error, since the
// files are fine and the disk is at fault — so that a server can answer 507 and
// a script can tell "free space and retry" from a bad recipe.
type DiskFullError struct {
	Dir  string        // the export folder that was asked for
	File string        // the file being written when the disk filled, relative to Dir ("" if unknown)
	Errn syscall.Errno // ENOSPC or EDQUOT
}

func (e *DiskFullError) Error() string {
	while := ""
	if e.File != "" {
		while = " while writing " + e.File
	}
	return fmt.Sprintf("%s: the disk is full (%v)%s; the partial export was removed: free space or choose another folder", e.Dir, e.Errn, while)
}

func (e *DiskFullError) Unwrap() error { return e.Errn }

// writeError is a failed write: the message names the file, as every export
// error does, and the OS error behind it stays reachable so that a full disk
// can be told apart.
type writeError struct {
	msg   error // a *tensor.Error
	path  string
	cause error
}

func (e *writeError) Error() string   { return e.msg.Error() }
func (e *writeError) Unwrap() []error { return []error{e.msg, e.cause} }

func writeFailed(path string, cause error) error {
	return &writeError{msg: tensor.Errorf(path, "writing: %v", cause), path: path, cause: cause}
}

// streamFailed is a failure while copying one tensor of src into dst, which
// may be a read of src or a write of dst.
func streamFailed(src, dst, name string, cause error) error {
	return &writeError{msg: tensor.TensorErrorf(src, name, "exporting: %v", cause), path: dst, cause: cause}
}

// asDiskFull turns err into a *DiskFullError when a full disk caused it; tmp is
// the temporary folder the export was written into, dir its final name.
func asDiskFull(err error, tmp, dir string) error {
	var errn syscall.Errno
	if !errors.As(err, &errn) || (errn != syscall.ENOSPC && errn != syscall.EDQUOT) {
		return err
	}
	full := &DiskFullError{Dir: dir, Errn: errn}
	var we *writeError
	if errors.As(err, &we) && we.path != "" && tmp != "" {
		if rel, rerr := filepath.Rel(tmp, we.path); rerr == nil && filepath.IsLocal(rel) {
			full.File = filepath.ToSlash(rel)
		}
	}
	return full
}
