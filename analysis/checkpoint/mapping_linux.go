package checkpoint

import (
	"os"
	"syscall"
	"unsafe"
)

// releaseGrain is the span, in address space, that a page fault may map at
// once: fault-around stays inside one page table (2 MiB), and a huge folio of
// the page cache is mapped whole by one fault. Releases are widened to whole
// grains: a fault of the next block may have mapped the tail of this one.
// Dropping a neighbour's pages early is harmless on a shared file mapping (they
// fault back in from the page cache), and since every block widens its own
// release, the last block to finish in a grain always clears it.
const releaseGrain = 2 << 20

// mapFile maps f read-only, or returns nil when it cannot (empty file, mmap
// refused): the caller then reads with pread.
func mapFile(f *os.File, size int64) *mapping {
	if size <= 0 || int64(int(size)) != size {
		return nil
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var data []byte
	ctrlErr := conn.Control(func(fd uintptr) {
		data, err = syscall.Mmap(int(fd), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	})
	if ctrlErr != nil || err != nil {
		return nil
	}
	// Sequential access: the kernel reads ahead further and ages pages faster.
	_ = syscall.Madvise(data, syscall.MADV_SEQUENTIAL)
	return &mapping{data: data}
}

func unmapFile(data []byte) error { return syscall.Munmap(data) }

func releaseRange(data []byte, off, size int64) {
	lo, hi := grainRange(data, off, size)
	if lo < hi {
		_ = syscall.Madvise(data[lo:hi], syscall.MADV_DONTNEED)
	}
}

// grainRange widens [off, off+size) of data to whole releaseGrains of address
// space, clamped to data.
func grainRange(data []byte, off, size int64) (lo, hi int64) {
	base := int64(uintptr(unsafe.Pointer(unsafe.SliceData(data))))
	lo = max(0, (base+off)&^(releaseGrain-1)-base)
	hi = min(int64(len(data)), (base+off+size+releaseGrain-1)&^(releaseGrain-1)-base)
	return lo, hi
}
