package checkpoint

import (
	"sync/atomic"
	"unsafe"
)

// mapping is a whole checkpoint file mapped read-only into memory, so the engine
// can hand the statistics kernel slices of the page cache instead of copying
// every byte with pread. Mapped pages count toward the process's resident
// memory while they stay mapped, so readers Release what they have processed.
//
// A file truncated while mapped makes reads past its new end fault (SIGBUS);
// only goroutines that run with debug.SetPanicOnFault and recover may touch
// mapped bytes (the engine's workers do). Everything else uses Tensor.ReadAt.
type mapping struct {
	data   []byte      // the whole file
	closed atomic.Bool // set before unmapping, so Close is idempotent
}

// contains reports whether addr lies inside the mapping.
func (m *mapping) contains(addr uintptr) bool {
	if m == nil || len(m.data) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(m.data)))
	return addr >= start && addr < start+uintptr(len(m.data))
}

// Close unmaps the file. Slices handed out earlier must not be used afterwards.
func (m *mapping) Close() error {
	if m.closed.Swap(true) {
		return nil
	}
	return unmapFile(m.data)
}

// Mapped returns bytes [off, off+size) of the tensor straight from the mapped
// file, or nil when the file is not mapped (Options.Map unset, a torch pickle,
// a platform without mmap, or a failed mmap): callers fall back to ReadAt. The range
// must lie inside the tensor; the bytes must only be read by a goroutine that
// recovers from memory faults (see mapping).
func (t *Tensor) Mapped(off, size int64) []byte {
	if t.m == nil || off < 0 || size < 0 || off+size > t.Size {
		return nil
	}
	start := t.Offset + off
	if start+size > int64(len(t.m.data)) {
		return nil
	}
	return t.m.data[start : start+size : start+size]
}

// Release tells the kernel that bytes [off, off+size) of the tensor will not be
// read again soon, dropping them from this process's mapped (resident) pages;
// the page cache keeps them. It does nothing for unmapped tensors.
func (t *Tensor) Release(off, size int64) {
	if t.m == nil || size <= 0 {
		return
	}
	releaseRange(t.m.data, t.Offset+off, size)
}

// MappedAt reports whether addr (a faulting address) lies in the file mapping
// this tensor's bytes come from.
func (t *Tensor) MappedAt(addr uintptr) bool { return t.m.contains(addr) }
