//go:build !linux

package checkpoint

import "os"

// Without Linux's mmap and madvise semantics checked here, tensors are read with
// pread (Tensor.ReadAt).
func mapFile(*os.File, int64) *mapping { return nil }

func unmapFile([]byte) error { return nil }

func releaseRange([]byte, int64, int64) {}
