package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

var fixtures = testfixtures.Dir()

type refPair struct {
	Base      string  `json:"base"`
	VLA       string  `json:"vla"`
	ShapeBase []int64 `json:"shape_base"`
	ShapeVLA  []int64 `json:"shape_vla"`
	DTypeBase string  `json:"dtype_base"`
	DTypeVLA  string  `json:"dtype_vla"`
}

type reference struct {
	Pairs   []refPair `json:"pairs"`
	VLAOnly []string  `json:"vla_only"`
}

func loadReference(t *testing.T) reference {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fixtures, "pi05", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return ref
}

var torchDTypes = map[string]tensor.DType{"torch.float32": tensor.F32, "torch.bfloat16": tensor.BF16}

func byName(ts []*Tensor) map[string]*Tensor {
	m := make(map[string]*Tensor, len(ts))
	for _, t := range ts {
		m[t.Name] = t
	}
	return m
}

func openSide(t *testing.T, specs ...string) *Side {
	t.Helper()
	s, err := OpenSide(specs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFixturesMatchReference(t *testing.T) {
	ref := loadReference(t)
	base := openSide(t, filepath.Join(fixtures, "pi05", "base"))
	vla := openSide(t, filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	flat := openSide(t, filepath.Join(fixtures, "pi05", "base_pickle", "pytorch_model.bin"))
	if got := base.Sources[0].Format; got != FormatSharded {
		t.Errorf("base format %s, want %s", got, FormatSharded)
	}
	if len(base.Sources[0].Files) != 4 {
		t.Errorf("base files %d, want 4 shards", len(base.Sources[0].Files))
	}
	bm, vm, pm := byName(base.Tensors), byName(vla.Tensors), byName(flat.Tensors)
	if len(bm) != len(ref.Pairs) || len(pm) != len(ref.Pairs) {
		t.Errorf("base has %d tensors, pickle %d, reference %d pairs", len(bm), len(pm), len(ref.Pairs))
	}
	for _, p := range ref.Pairs {
		b, v, pk := bm[p.Base], vm[p.VLA], pm[p.Base]
		if b == nil || v == nil || pk == nil {
			t.Errorf("%s / %s: missing (base %v, vla %v, pickle %v)", p.Base, p.VLA, b != nil, v != nil, pk != nil)
			continue
		}
		if !equalShape(b.Shape, p.ShapeBase) || !equalShape(v.Shape, p.ShapeVLA) || !equalShape(pk.Shape, p.ShapeBase) {
			t.Errorf("%s: shapes %v %v %v, want %v %v", p.VLA, b.Shape, pk.Shape, v.Shape, p.ShapeBase, p.ShapeVLA)
		}
		if b.DType != torchDTypes[p.DTypeBase] || v.DType != torchDTypes[p.DTypeVLA] || pk.DType != b.DType {
			t.Errorf("%s: dtypes %s %s %s, want %s %s", p.VLA, b.DType, pk.DType, v.DType, p.DTypeBase, p.DTypeVLA)
		}
		// The pickle holds the same base: the bytes must be identical.
		bb, pb := make([]byte, b.Size), make([]byte, pk.Size)
		if err := b.ReadAt(bb, 0); err != nil {
			t.Fatal(err)
		}
		if err := pk.ReadAt(pb, 0); err != nil {
			t.Fatal(err)
		}
		if string(bb) != string(pb) {
			t.Errorf("%s: pickle bytes differ from the sharded safetensors", p.Base)
		}
	}
	for _, n := range ref.VLAOnly {
		if vm[n] == nil {
			t.Errorf("VLA-only %s not read", n)
		}
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNestedPickleFlattens(t *testing.T) {
	s := openSide(t, filepath.Join(fixtures, "pi05", "base_pickle", "nested-checkpoint.pt"))
	var vision, lm int
	for _, tn := range s.Tensors {
		switch {
		case strings.HasPrefix(tn.Name, "model.vision."):
			vision++
		case strings.HasPrefix(tn.Name, "model.lm."):
			lm++
		default:
			t.Errorf("unexpected tensor %s", tn.Name)
		}
	}
	if vision == 0 || lm == 0 {
		t.Errorf("vision %d, lm %d tensors", vision, lm)
	}
	entries := map[string]string{}
	for _, e := range s.Sources[0].Entries {
		entries[e.Name] = e.Value
	}
	if !strings.Contains(entries["step"], "1234") || !strings.Contains(entries["note"], "nested") {
		t.Errorf("non-tensor entries %v", entries)
	}
}

func TestPrefixesAndClashes(t *testing.T) {
	vlaFile := filepath.Join(fixtures, "pi05", "vla", "model.safetensors")
	s := openSide(t, "a.="+vlaFile, "b.="+vlaFile)
	if len(s.Tensors)%2 != 0 || !strings.HasPrefix(s.Tensors[0].Name, "a.") {
		t.Errorf("prefixed names: %d tensors, first %s", len(s.Tensors), s.Tensors[0].Name)
	}
	_, err := OpenSide([]string{vlaFile, vlaFile}, Options{})
	if err == nil || !strings.Contains(err.Error(), "also provided by") {
		t.Errorf("clash: %v", err)
	}
}

func TestParseSpec(t *testing.T) {
	for _, c := range []struct{ in, prefix, path string }{
		{"a.safetensors", "", "a.safetensors"},
		{"vision_backbone.featurizer.=base/dinov2.safetensors", "vision_backbone.featurizer.", "base/dinov2.safetensors"},
		{"dir/x=y.safetensors", "", "dir/x=y.safetensors"},
		{"=x.bin", "", "x.bin"},
	} {
		p, path := ParseSpec(c.in)
		if p != c.prefix || path != c.path {
			t.Errorf("ParseSpec(%q) = %q, %q; want %q, %q", c.in, p, path, c.prefix, c.path)
		}
	}
}

// writeST writes a minimal valid safetensors file with one F32 tensor per name.
func writeST(t *testing.T, path string, names ...string) {
	t.Helper()
	hdr := map[string]any{}
	for i, n := range names {
		hdr[n] = map[string]any{"dtype": "F32", "shape": []int{1}, "data_offsets": []int{4 * i, 4 * (i + 1)}}
	}
	js, _ := json.Marshal(hdr)
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	buf = append(buf, js...)
	buf = append(buf, make([]byte, 4*len(names))...)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeIndex(t *testing.T, dir string, total int, wm map[string]string) {
	t.Helper()
	js, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": wm})
	if err := os.WriteFile(filepath.Join(dir, IndexName), js, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFolderErrors(t *testing.T) {
	outside := t.TempDir()
	writeST(t, filepath.Join(outside, "evil.safetensors"), "x")
	cases := []struct {
		name      string
		setup     func(dir string)
		want      string
		forbidden bool
	}{
		{"absolute shard", func(d string) {
			writeIndex(t, d, 4, map[string]string{"x": filepath.Join(outside, "evil.safetensors")})
		}, "absolute path", true},
		{"dotdot shard", func(d string) {
			writeIndex(t, d, 4, map[string]string{"x": "../evil.safetensors"})
		}, "leaves the folder", true},
		{"symlink out", func(d string) {
			os.Symlink(filepath.Join(outside, "evil.safetensors"), filepath.Join(d, "s.safetensors"))
			writeIndex(t, d, 4, map[string]string{"x": "s.safetensors"})
		}, "escapes", true},
		{"missing shard file", func(d string) {
			writeIndex(t, d, 4, map[string]string{"x": "gone.safetensors"})
		}, "no such file", false},
		{"tensor missing from shard", func(d string) {
			writeST(t, filepath.Join(d, "a.safetensors"), "x")
			writeIndex(t, d, 8, map[string]string{"x": "a.safetensors", "y": "a.safetensors"})
		}, "missing from its shard", false},
		{"tensor not in index", func(d string) {
			writeST(t, filepath.Join(d, "a.safetensors"), "x", "y")
			writeIndex(t, d, 8, map[string]string{"x": "a.safetensors"})
		}, "not listed", false},
		{"total size", func(d string) {
			writeST(t, filepath.Join(d, "a.safetensors"), "x")
			writeIndex(t, d, 999, map[string]string{"x": "a.safetensors"})
		}, "total_size", false},
		{"empty folder", func(d string) {}, "no model.safetensors.index.json", false},
		{"duplicate across plain files", func(d string) {
			writeST(t, filepath.Join(d, "a.safetensors"), "x")
			writeST(t, filepath.Join(d, "b.safetensors"), "x")
		}, "also stored in", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(dir)
			_, err := OpenSource(dir, Options{})
			var te *tensor.Error
			if !errors.As(err, &te) {
				t.Fatalf("want *tensor.Error, got %v", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %q and the folder", err, c.want)
			}
			if te.Forbidden != c.forbidden {
				t.Errorf("Forbidden = %v, want %v", te.Forbidden, c.forbidden)
			}
		})
	}
}

func TestPlainFolderWithoutIndex(t *testing.T) {
	dir := t.TempDir()
	writeST(t, filepath.Join(dir, "b.safetensors"), "y")
	writeST(t, filepath.Join(dir, "a.safetensors"), "x")
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"num_attention_heads": 4}`), 0o644)
	s, err := OpenSource("p.="+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Format != FormatFolder || len(s.Tensors) != 2 || s.Tensors[0].Name != "p.x" || s.Config == nil {
		t.Errorf("format %s, tensors %v, config %s", s.Format, s.Tensors, s.Config)
	}
}

func TestRootsConfine(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	writeST(t, filepath.Join(root, "in.safetensors"), "x")
	writeST(t, filepath.Join(outside, "out.safetensors"), "x")
	os.Symlink(filepath.Join(outside, "out.safetensors"), filepath.Join(root, "link.safetensors"))
	os.Symlink(outside, filepath.Join(root, "linkdir"))
	opt := Options{Roots: []string{root}}
	if s, err := OpenSource(filepath.Join(root, "in.safetensors"), opt); err != nil {
		t.Fatalf("inside: %v", err)
	} else {
		s.Close()
	}
	for _, p := range []string{
		filepath.Join(outside, "out.safetensors"),
		filepath.Join(root, "..", filepath.Base(outside), "out.safetensors"),
		filepath.Join(root, "link.safetensors"),
		filepath.Join(root, "linkdir", "out.safetensors"),
	} {
		_, err := OpenSource(p, opt)
		var te *tensor.Error
		if !errors.As(err, &te) || !te.Forbidden {
			t.Errorf("%s: want a forbidden error, got %v", p, err)
		}
	}
}

func TestSpecialFilesRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenSource(fifo, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("fifo: %v", err)
	}
	_, err = OpenSource("/dev/zero", Options{})
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("device: %v", err)
	}
}

func TestReadAtBounds(t *testing.T) {
	s := openSide(t, filepath.Join(fixtures, "pi05", "vla", "model.safetensors"))
	tn := s.Tensors[0]
	if err := tn.ReadAt(make([]byte, 8), tn.Size-4); err == nil {
		t.Error("read past the tensor's end accepted")
	}
	s.Close()
	if err := tn.ReadAt(make([]byte, 1), 0); err == nil {
		t.Error("read from a closed source accepted")
	}
}

// FilesOnly finds the same files with the same identities, without headers.
func TestFilesOnly(t *testing.T) {
	for _, p := range []string{filepath.Join(fixtures, "pi05", "base"), filepath.Join(fixtures, "pi05", "base_pickle", "pytorch_model.bin")} {
		full, err := OpenSource("x.="+p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		light, err := OpenSource("x.="+p, Options{FilesOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(light.Tensors) != 0 || len(light.Files) != len(full.Files) || light.Prefix != "x." {
			t.Errorf("%s: files-only source has %d tensors, %d files (full: %d)", p, len(light.Tensors), len(light.Files), len(full.Files))
		}
		for i := range full.Files {
			if light.Files[i] != full.Files[i] {
				t.Errorf("%s: file %d identity %+v, want %+v", p, i, light.Files[i], full.Files[i])
			}
		}
		full.Close()
		light.Close()
	}
}

func TestMapSpecPaths(t *testing.T) {
	got := MapSpecPaths([]string{"a.safetensors", "vision.=dir/b.safetensors"}, func(p string) string { return "/root/" + p })
	if got[0] != "/root/a.safetensors" || got[1] != "vision.=/root/dir/b.safetensors" {
		t.Errorf("MapSpecPaths = %q", got)
	}
}
