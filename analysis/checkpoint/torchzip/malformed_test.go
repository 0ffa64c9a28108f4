package torchzip

import (
	"archive/zip"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/tensor"
)

// readBytes writes data to a temporary file and reads it as a torch archive.
func readBytes(t *testing.T, data []byte) (*Archive, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := Read(f, int64(len(data)), path, 1<<20, 1000)
	return a, path, err
}

// callPickle is a pickle that would call module.name("ls") if it were run.
func callPickle(module, name string, stackGlobal bool) []byte {
	p := &pickleBuilder{}
	if stackGlobal {
		p.op(opProto, 4)
		p.op(opShortBinunicode, byte(len(module))).WriteString(module)
		p.op(opShortBinunicode, byte(len(name))).WriteString(name)
		p.op(opStackGlobal)
	} else {
		p.op(opProto, 2).global(module, name)
	}
	return p.op(opMark).str("ls").op(opTuple, opReduce).stop()
}

var legacyHeader = append([]byte{opProto, 2}, legacyMagic...)

func TestMalformedInputs(t *testing.T) {
	f32 := func(pkl []byte) func(*testing.T) []byte {
		return func(t *testing.T) []byte { return torchZip(t, pkl, 4*8) }
	}
	cases := []struct {
		name  string
		build func(t *testing.T) []byte
		want  []string // substrings of the error message, besides the path
	}{
		{"os.system GLOBAL", f32(callPickle("os", "system", false)), []string{"refusing global os.system"}},
		{"os.system STACK_GLOBAL", f32(callPickle("os", "system", true)), []string{"refusing global os.system"}},
		{"builtins.eval", f32(callPickle("builtins", "eval", false)), []string{"refusing global builtins.eval"}},
		{"posix.system", f32(callPickle("posix", "system", true)), []string{"refusing global posix.system"}},
		{"subprocess.Popen", f32(callPickle("subprocess", "Popen", false)), []string{"subprocess.Popen"}},
		{"__builtin__.exec", f32(callPickle("__builtin__", "exec", false)), []string{"__builtin__.exec"}},
		{"torch global outside the allowlist", f32(callPickle("torch", "load", false)), []string{"refusing global torch.load"}},
		{"truncated zip", func(t *testing.T) []byte {
			z := torchZip(t, onePickle("w", "FloatStorage", "0", 8, 0, []int32{8}, []int32{1}), 4*8)
			return z[:len(z)/2]
		}, []string{"truncated"}},
		{"missing data.pkl", func(t *testing.T) []byte {
			return buildZip(t, zipEntry{name: "archive/data/0", data: make([]byte, 32)})
		}, []string{"data.pkl"}},
		{"missing storage", func(t *testing.T) []byte {
			return torchZip(t, onePickle("w", "FloatStorage", "1", 8, 0, []int32{8}, []int32{1}), 4*8)
		}, []string{`tensor "w"`, `storage "1"`, "not in the zip archive"}},
		{"deflated storage", func(t *testing.T) []byte {
			return buildZip(t,
				zipEntry{name: "archive/data.pkl", data: onePickle("w", "FloatStorage", "0", 8, 0, []int32{8}, []int32{1})},
				zipEntry{name: "archive/data/0", data: make([]byte, 32), method: zip.Deflate})
		}, []string{`storage "0"`, "compressed"}},
		{"legacy format", func(t *testing.T) []byte {
			return append(append([]byte{}, legacyHeader...), make([]byte, 64)...)
		}, []string{"legacy (pre-1.6)", "_use_new_zipfile_serialization=True"}},
		{"tar format", func(t *testing.T) []byte {
			b := make([]byte, 1024)
			copy(b, "storages")
			copy(b[257:], "ustar")
			return b
		}, []string{"tar-based", "not supported"}},
		{"not a zip", func(t *testing.T) []byte { return []byte("hello, this is not a checkpoint at all") }, []string{"not a zip archive"}},
		{"short file", func(t *testing.T) []byte { return []byte("PK") }, []string{"too short"}},
		{"truncated pickle (no STOP)", func(t *testing.T) []byte {
			pkl := onePickle("w", "FloatStorage", "0", 8, 0, []int32{8}, []int32{1})
			return torchZip(t, pkl[:len(pkl)-1], 32)
		}, []string{"truncated", "no STOP"}},
		{"pickle cut inside an opcode argument", func(t *testing.T) []byte {
			return torchZip(t, []byte{opProto, 2, opBinint, 1, 2}, 32)
		}, []string{"truncated"}},
		{"stack underflow", f32(newPickle().op(opReduce).stop()), []string{"stack underflow"}},
		{"pop across a MARK", f32(newPickle().op(opNone, opMark, opPop).stop()), []string{"stack underflow"}},
		{"bad memo index", f32(newPickle().op(opBinget, 5).stop()), []string{"memo index 5"}},
		{"huge BINUNICODE length", f32(newPickle().op(opBinunicode, 0xff, 0xff, 0xff, 0x7f, 'a').stop()), []string{"length 2147483647 exceeds"}},
		{"huge BINUNICODE8 length", f32(newPickle().op(opBinunicode8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff).stop()), []string{"exceeds"}},
		{"huge LONG4", f32(newPickle().op(opLong4, 0xff, 0xff, 0xff, 0x00).stop()), []string{"over the 64-byte limit"}},
		{"huge FRAME", f32(newPickle().op(opFrame, 0, 0, 0, 0, 0, 0, 0, 0x40).stop()), []string{"exceeds"}},
		{"deep MARK nesting", f32(append(newPickle().Bytes(), []byte(strings.Repeat("(", 100000))...)), []string{"deeper than 256"}},
		{"deep list nesting", func(t *testing.T) []byte {
			p := newPickle()
			for range 1000 {
				p.op(opEmptyList)
			}
			for range 999 {
				p.op(opAppend)
			}
			return torchZip(t, p.stop(), 32)
		}, []string{"nests deeper than 256 levels at the root"}},
		{"storage too small for the view", func(t *testing.T) []byte {
			return torchZip(t, onePickle("w", "FloatStorage", "0", 8, 4, []int32{8}, []int32{1}), 4*8)
		}, []string{`tensor "w"`, "storage too small"}},
		{"non-contiguous stride", func(t *testing.T) []byte {
			return torchZip(t, onePickle("w.t", "FloatStorage", "0", 6, 0, []int32{2, 3}, []int32{1, 2}), 4*6)
		}, []string{`tensor "w.t"`, "non-contiguous view", "stride [1 2]", ".contiguous()"}},
		{"storage size not a multiple of the element", func(t *testing.T) []byte {
			return torchZip(t, onePickle("w", "FloatStorage", "0", 2, 0, []int32{2}, []int32{1}), 10)
		}, []string{`tensor "w"`, "not a multiple"}},
		{"persistent id numel disagrees with the entry", func(t *testing.T) []byte {
			return torchZip(t, onePickle("w", "FloatStorage", "0", 100, 0, []int32{8}, []int32{1}), 4*8)
		}, []string{`tensor "w"`, "persistent id says 100"}},
		{"unsupported storage type", func(t *testing.T) []byte {
			return torchZip(t, onePickle("w", "QInt8Storage", "0", 8, 0, []int32{8}, []int32{1}), 8)
		}, []string{"torch.QInt8Storage is not supported"}},
		{"tuple dict key", f32(newPickle().op(opEmptyDict, opBinint1, 1, opBinint1, 2, opTuple2, opBinint1, 3, opSetitem).stop()),
			[]string{"dict at the root has a key of type tuple", "keys must be strings or integers"}},
		{"duplicate flattened name", func(t *testing.T) []byte {
			p := newPickle().op(opEmptyDict, opMark)
			p.str("a").op(opEmptyDict).str("b").int(1).op(opSetitem)
			p.str("a.b").int(2)
			return torchZip(t, p.op(opSetitems).stop(), 32)
		}, []string{`tensor "a.b"`, "same dotted name"}},
		{"byteorder big", func(t *testing.T) []byte {
			return buildZip(t,
				zipEntry{name: "archive/data.pkl", data: onePickle("w", "FloatStorage", "0", 8, 0, []int32{8}, []int32{1})},
				zipEntry{name: "archive/byteorder", data: []byte("big")},
				zipEntry{name: "archive/data/0", data: make([]byte, 32)})
		}, []string{`byteorder is "big"`, "little-endian"}},
		{"two data.pkl", func(t *testing.T) []byte {
			pkl := newPickle().op(opEmptyDict).stop()
			return buildZip(t, zipEntry{name: "a/data.pkl", data: pkl}, zipEntry{name: "b/data.pkl", data: pkl})
		}, []string{"two data.pkl"}},
		{"data.pkl over the limit", func(t *testing.T) []byte {
			return torchZip(t, make([]byte, 2<<20), 32)
		}, []string{"over the 1048576-byte limit"}},
		{"unsupported opcode INST", f32(append(newPickle().Bytes(), []byte("ios\nsystem\n.")...)), []string{"opcode not supported"}},
		{"NEWOBJ of a storage class", f32(newPickle().global("torch", "FloatStorage").op(opEmptyTuple, opNewobj).stop()),
			[]string{"only collections.OrderedDict may be instantiated"}},
		{"REDUCE on a dtype", f32(newPickle().global("torch", "float32").op(opEmptyTuple, opReduce).stop()),
			[]string{"torch.float32 cannot be applied"}},
		{"persistent id that is not a tuple", f32(newPickle().str("storage").op(opBinpersid).stop()),
			[]string{"persistent id must be a 5-tuple"}},
		{"rebuild with a non-storage", f32(newPickle().global("torch._utils", "_rebuild_tensor_v2").op(opMark).
			int(0).int(0).ints(nil).ints(nil).op(opNewfalse, opNone, opTuple, opReduce).stop()),
			[]string{"needs a storage"}},
		{"too many tensors", func(t *testing.T) []byte {
			p := newPickle().op(opEmptyDict, opMark)
			for i := range 1001 {
				p.str("t" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))
				p.tensor("FloatStorage", "0", 8, 0, []int32{8}, []int32{1})
			}
			return torchZip(t, p.op(opSetitems).stop(), 32)
		}, []string{"more than 1000 tensors"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.build(t)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			a, path, err := readBytes(t, data)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("no error; archive %+v", a)
			}
			var te *tensor.Error
			if !errors.As(err, &te) {
				t.Fatalf("error %v is %T, not *tensor.Error", err, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
				t.Errorf("reading allocated %d bytes", grew)
			}
		})
	}
}

// TestHandBuiltArchives checks what torch writes besides the fixtures' plain
// case: offsets into shared storages, size-1 dims with odd strides, empty and
// scalar tensors, parameters, tensor lists, int keys, protocol 4 opcodes, dtype
// storage types, OrderedDict _metadata and non-tensor renderings.
func TestHandBuiltArchives(t *testing.T) {
	t.Run("views into one storage", func(t *testing.T) {
		p := newPickle().op(opEmptyDict, opMark)
		p.str("b").tensor("FloatStorage", "0", 12, 4, []int32{2, 1, 4}, []int32{4, 99, 1})
		p.str("a").tensor("FloatStorage", "0", 12, 0, []int32{4}, []int32{1})
		p.str("empty").tensor("FloatStorage", "0", 12, 12, []int32{0, 5}, []int32{7, 3})
		p.str("scalar").tensor("FloatStorage", "0", 12, 11, nil, nil)
		a, _, err := readBytes(t, torchZip(t, p.op(opSetitems).stop(), 48))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Tensors) != 4 {
			t.Fatalf("%d tensors, want 4", len(a.Tensors))
		}
		base := a.Tensors[0].Offset
		want := []struct {
			name      string
			off, size int64
			rank      int
		}{{"a", 0, 16, 1}, {"b", 16, 32, 3}, {"scalar", 44, 4, 0}, {"empty", 48, 0, 2}}
		for i, w := range want {
			e := a.Tensors[i]
			if e.Name != w.name || e.Offset-base != w.off || e.Size != w.size || len(e.Shape) != w.rank || e.DType != tensor.F32 {
				t.Errorf("tensor %d = %+v, want %s at +%d, %d bytes, rank %d", i, e, w.name, w.off, w.size, w.rank)
			}
		}
	})
	t.Run("parameters, lists, int keys, metadata", func(t *testing.T) {
		p := newPickle().global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opMark)
		p.str("param").global("torch._utils", "_rebuild_parameter").op(opMark)
		p.tensor("BFloat16Storage", "0", 4, 0, []int32{4}, []int32{1}).op(opNewtrue)
		p.global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opTuple, opReduce)
		p.str("layers").op(opEmptyList, opMark)
		p.tensor("HalfStorage", "1", 2, 0, []int32{2}, []int32{1})
		p.op(opEmptyDict).op(opBinint1, 7).tensor("LongStorage", "2", 1, 0, nil, nil).op(opSetitem)
		p.op(opAppends)
		p.str("config").op(opEmptyList, opMark).int(1).op(opBinfloat, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0).str("x").op(opNone, opAppends)
		p.str("flag").op(opNewtrue)
		p.op(opSetitems)
		// state._metadata, pickled by OrderedDict.__reduce__ as BUILD state.
		p.op(opEmptyDict).str("_metadata").op(opEmptyDict, opSetitem, opBuild)
		a, _, err := readBytes(t, torchZip(t, p.stop(), 8, 4, 8))
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]tensor.DType{}
		for _, e := range a.Tensors {
			names[e.Name] = e.DType
		}
		wantT := map[string]tensor.DType{"param": tensor.BF16, "layers.0": tensor.F16, "layers.1.7": tensor.I64}
		if len(names) != len(wantT) {
			t.Errorf("tensors %v, want %v", names, wantT)
		}
		for n, dt := range wantT {
			if names[n] != dt {
				t.Errorf("tensor %s: %v, want %v (all: %v)", n, names[n], dt, names)
			}
		}
		wantN := []NonTensor{{"config", `list [1, 0.5, "x", None]`}, {"flag", "bool True"}}
		if len(a.NonTensors) != len(wantN) || a.NonTensors[0] != wantN[0] || a.NonTensors[1] != wantN[1] {
			t.Errorf("non-tensors %q, want %q", a.NonTensors, wantN)
		}
	})
	t.Run("protocol 4 with dtype storage type", func(t *testing.T) {
		p := &pickleBuilder{}
		p.op(opProto, 4, opFrame, 0, 0, 0, 0, 0, 0, 0, 0)
		p.op(opEmptyDict, opMemoize, opShortBinunicode, 1, 'w', opMemoize)
		p.op(opShortBinunicode, 12).WriteString("torch._utils")
		p.op(opShortBinunicode, 18).WriteString("_rebuild_tensor_v2")
		p.op(opStackGlobal, opMemoize, opMark, opMark).str("storage").global("torch", "bfloat16").str("0").str("cuda:0").int(3)
		p.op(opTuple, opBinpersid).int(0).ints([]int32{3}).ints([]int32{1}).op(opNewfalse, opEmptyDict, opNone)
		p.op(opTuple, opReduce, opSetitem)
		p.str("raw").global("_codecs", "encode").op(opMark).str("\u00ff!").str("latin1").op(opTuple, opReduce, opSetitem)
		p.op(opBinget, 1).op(opBinget, 0).op(opSetitem) // w = the dict itself: a cycle
		_, _, err := readBytes(t, torchZip(t, p.stop(), 6))
		if err == nil || !strings.Contains(err.Error(), `nests deeper than 256 levels at "w.w.w`) {
			t.Errorf("cyclic dict: error %v, want nests deeper", err)
		}
		p.Truncate(p.Len() - 5) // drop the cycle
		a, _, err := readBytes(t, torchZip(t, p.stop(), 6))
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Tensors) != 1 || a.Tensors[0].Name != "w" || a.Tensors[0].DType != tensor.BF16 || a.Tensors[0].Size != 6 {
			t.Errorf("tensors %+v, want w BF16 of 6 bytes", a.Tensors)
		}
		if len(a.NonTensors) != 1 || a.NonTensors[0] != (NonTensor{"raw", "bytes (2 bytes)"}) {
			t.Errorf("non-tensors %+v, want raw = bytes (2 bytes)", a.NonTensors)
		}
	})
}
