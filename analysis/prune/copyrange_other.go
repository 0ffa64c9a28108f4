//go:build !linux

package prune

import (
	"errors"
	"os"
)

var errNoCopyRange = errors.New("copy_file_range not supported here")

// copyFileRange is Linux's; elsewhere the export copies through memory.
func copyFileRange(in *os.File, roff int64, out *os.File, woff int64, n int) (int, error) {
	return 0, errNoCopyRange
}
