package checkpoint

import (
	"bytes"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"
)

// Mapped bytes are the bytes ReadAt reads, for every tensor, also after a
// Release (which drops pages from the process, not from the file); without
// Options.Map, and for torch pickles, nothing is mapped.
func TestMappedMatchesReadAt(t *testing.T) {
	vla := filepath.Join(fixtures, "pi05", "vla", "model.safetensors")
	s, err := OpenSide([]string{vla}, Options{Map: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if runtime.GOOS != "linux" { // files are mapped on Linux only; elsewhere pread is all there is
		if s.Tensors[0].Mapped(0, 1) != nil {
			t.Fatal("a file is mapped outside Linux")
		}
		return
	}
	for _, tn := range s.Tensors {
		want := make([]byte, tn.Size)
		if err := tn.ReadAt(want, 0); err != nil {
			t.Fatal(err)
		}
		got := tn.Mapped(0, tn.Size)
		if got == nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: mapped bytes differ from ReadAt's", tn.Name)
		}
		tn.Release(0, tn.Size)
		if !bytes.Equal(tn.Mapped(0, tn.Size), want) {
			t.Fatalf("%s: bytes changed after Release", tn.Name)
		}
		if tn.Mapped(1, tn.Size) != nil || tn.Mapped(-1, 1) != nil {
			t.Fatalf("%s: a range outside the tensor was mapped", tn.Name)
		}
		if !tn.MappedAt(uintptrOf(got)) {
			t.Fatalf("%s: MappedAt does not recognise the tensor's own bytes", tn.Name)
		}
	}
	first := s.Tensors[0]
	s.Close()
	if first.Mapped(0, 1) != nil {
		t.Error("a closed source still hands out mapped bytes")
	}

	cases := []struct {
		name string
		spec string
		opt  Options
	}{
		{"without Map", vla, Options{}},
		{"torch pickle", filepath.Join(fixtures, "pi05", "base_pickle", "pytorch_model.bin"), Options{Map: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := openSideWith(t, c.opt, c.spec)
			for _, tn := range s.Tensors {
				if tn.Mapped(0, tn.Size) != nil {
					t.Fatalf("%s is mapped", tn.Name)
				}
				tn.Release(0, tn.Size) // a no-op, not a crash
			}
		})
	}
}

func openSideWith(t *testing.T, opt Options, specs ...string) *Side {
	t.Helper()
	s, err := OpenSide(specs, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
