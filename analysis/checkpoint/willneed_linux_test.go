package checkpoint

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WillNeed starts reading an evicted range from disk: after it, the range's
// pages come into the page cache without anyone reading them.
func TestWillNeedReadsAhead(t *testing.T) {
	src, err := os.Open(filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// A private copy, flushed, so that its pages can be dropped.
	path := filepath.Join(t.TempDir(), "model.safetensors")
	dst, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Sync(); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	s, err := OpenSide([]string{path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	big := s.Tensors[0]
	for i := range s.Tensors {
		if s.Tensors[i].Size > big.Size {
			big = s.Tensors[i]
		}
	}
	f := big.f.(*os.File)
	// Residency is read with mincore on a mapping, which, unlike a read,
	// starts no readahead of its own.
	info, _ := f.Stat()
	m, err := unix.Mmap(int(f.Fd()), 0, int(info.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	first, last := big.Offset/page, (big.Offset+big.Size-1)/page
	resident := func() bool {
		vec := make([]byte, last-first+1)
		r := m[first*page : (last+1)*page]
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&r[0])), uintptr(len(r)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatal(e)
		}
		for _, v := range vec {
			if v&1 == 0 {
				return false
			}
		}
		return true
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if resident() {
		t.Fatalf("%s stays in the page cache after FADV_DONTNEED (a tmpfs?): the test needs a disk-backed TempDir", path)
	}
	big.WillNeed(0, big.Size)
	deadline := time.Now().Add(5 * time.Second)
	for !resident() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d bytes of %q not in the page cache 5 s after WillNeed", path, big.Size, big.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A hint on a range already cached, past the end, or of nothing is harmless.
	big.WillNeed(0, big.Size)
	big.WillNeed(big.Size, 10)
	big.WillNeed(0, 0)
	got := make([]byte, big.Size)
	if err := big.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
}
