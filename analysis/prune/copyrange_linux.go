package prune

import (
	"errors"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// errNoCopyRange says the kernel does not copy between these two files
// (another file system, no support, an old kernel): copy through memory.
var errNoCopyRange = errors.New("copy_file_range not supported here")

// copyFileRange copies up to n bytes of in at roff to out at woff in the
// kernel, without moving the file offsets; it answers 0 at in's end.
func copyFileRange(in *os.File, roff int64, out *os.File, woff int64, n int) (int, error) {
	defer runtime.KeepAlive(in)
	defer runtime.KeepAlive(out)
	rfd, wfd := int(in.Fd()), int(out.Fd())
	for {
		k, err := unix.CopyFileRange(rfd, &roff, wfd, &woff, n, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.ENOSYS, err == unix.EXDEV, err == unix.EINVAL, err == unix.EOPNOTSUPP, err == unix.EPERM, err == unix.EBADF:
			// What os.File.ReadFrom also takes as "not here" before falling
			// back to a plain copy.
			return 0, errNoCopyRange
		case err != nil:
			return 0, &os.PathError{Op: "copy_file_range", Path: out.Name(), Err: err}
		}
		return k, nil
	}
}
