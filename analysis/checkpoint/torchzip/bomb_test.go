package torchzip

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/internal/hostile"
)

// bombBudget is what reading one hostile file may allocate in all (garbage
// included), the bound the review asked of upload validation, preview and
// inspect alike.
const bombBudget = 300 << 20

// TestPickleBombs replays the review's pickle bomb and its variants on real
// files through Read with the default limits: each is refused with a message
// that names the file and the problem, having allocated less than 300 MB.
// Before the budgets, the stored 8 M-None bomb was accepted after allocating
// ~600 MB, and the 64 KB deflated one took `inspect` to 3.2 GB RSS.
func TestPickleBombs(t *testing.T) {
	const M = 1 << 20
	// An 8-byte-per-iteration loop over a memoized value, for the copy bombs.
	repeat := func(p *pickleBuilder, n int, ops ...byte) {
		for range n {
			p.op(ops...)
		}
	}
	bigDict := func() *pickleBuilder {
		p := newPickle().op(opEmptyDict, opBinput, 0, opMark)
		for i := range 100_000 {
			p.int(int32(i)).op(opNone)
		}
		return p.op(opSetitems).global("collections", "OrderedDict").op(opBinput, 1)
	}()
	repeat(bigDict, 200, opBinget, 1, opBinget, 0, opTuple1, opReduce, opPop)
	bigString := newPickle().str(strings.Repeat("x", M)).op(opBinput, 0).global("_codecs", "encode").op(opBinput, 1)
	repeat(bigString, 200, opBinget, 1, opBinget, 0, opShortBinunicode, 6, 'l', 'a', 't', 'i', 'n', '1', opTuple2, opReduce, opPop)
	memo := newPickle().op(opNone)
	repeat(memo, 3*M, opMemoize)
	longKey := strings.Repeat("k", 3000)
	nested := newPickle().op(opEmptyDict).str(longKey).op(opEmptyDict).str(longKey)
	nested.tensor("FloatStorage", "0", 8, 0, []int32{8}, []int32{1}).op(opSetitem, opSetitem)

	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"deflated bomb, 61 KB", hostile.PickleBomb(60, M, true), "looks like a zip bomb"},
		{"deflated bomb, 64 KB", hostile.PickleBomb(64, M, true), "over the 67108864-byte limit"},
		{"stored bomb, 8 M Nones", hostile.PickleBomb(8, M, false), "refusing a pickle bomb"},
		{"empty dicts", torchZip(t, newPickle().op(opEmptyList, opMark).op(bytes.Repeat([]byte{opEmptyDict}, 2*M)...).op(opAppends).stop()), "refusing a pickle bomb"},
		{"memo entries", torchZip(t, memo.stop()), "memo entries"},
		{"OrderedDict copies", torchZip(t, bigDict.stop()), "refusing a pickle bomb"},
		{"latin1 copies", torchZip(t, bigString.stop()), "bytes of strings"},
		{"long nested names", torchZip(t, nested.stop(), 32), "longer than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bomb.pt")
			hostile.WriteFile(t, path, tc.file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var a *Archive
			use := hostile.Measure(func() { a, err = Read(f, int64(len(tc.file)), path, 0, 0) })
			t.Logf("%d-byte file: %v", len(tc.file), use)
			if err == nil {
				t.Fatalf("accepted (%d tensors, %d other entries)", len(a.Tensors), len(a.NonTensors))
			}
			if msg := err.Error(); !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, tc.want) {
				t.Errorf("error %q: want it to start with the path and say %q", msg, tc.want)
			}
			if use.Alloc > bombBudget {
				t.Errorf("allocated %d MB reading the bomb, over %d MB", use.Alloc>>20, bombBudget>>20)
			}
		})
	}
}

// TestDeflatedPickleWithinRatio: a re-zipped checkpoint whose data.pkl was
// deflated at an ordinary ratio still reads; the ratio bound only refuses bombs.
func TestDeflatedPickleWithinRatio(t *testing.T) {
	pkl := onePickle("w", "FloatStorage", "0", 8, 0, []int32{8}, []int32{1})
	file := buildZip(t, zipEntry{name: "archive/data.pkl", data: pkl, method: zip.Deflate},
		zipEntry{name: "archive/data/0", data: make([]byte, 32)})
	a, err := Read(bytes.NewReader(file), int64(len(file)), "rezipped.pt", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tensors) != 1 || a.Tensors[0].Name != "w" {
		t.Fatalf("tensors %+v, want one named w", a.Tensors)
	}
}

// TestBudgetFitsRealCheckpoints: the fixtures' state dicts stay well inside the
// per-tensor budgets the bounds are derived from.
func TestBudgetFitsRealCheckpoints(t *testing.T) {
	for _, name := range []string{"pytorch_model.bin", "nested-checkpoint.pt"} {
		data, table := fixturePickle(t, name)
		u := &unpickler{data: data, memo: map[uint32]any{}, storages: table, loaded: map[string]*storageRef{},
			budget: newBudget(DefaultMaxTensors, len(data))}
		if _, err := u.run(); err != nil {
			t.Fatal(err)
		}
		a, err := unpickle(name, data, table, DefaultMaxTensors)
		if err != nil {
			t.Fatal(err)
		}
		n := len(a.Tensors)
		if u.budget.objects > objectsPerTensor*n || u.budget.memo > memoPerTensor*n {
			t.Errorf("%s: %d tensors use %d cells and %d memo entries; the budget per tensor (%d, %d) is too tight",
				name, n, u.budget.objects, u.budget.memo, objectsPerTensor, memoPerTensor)
		}
	}
}
