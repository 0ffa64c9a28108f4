package prune

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
)

// exportRecipe touches the fixture's couplings: gate/up/down, MQA q/o (a
// whole layer's query heads go; under the fixture's default pi05 rule its
// shared k/v stay, as in the authors' π0.5 code; k/v cuts are exported in
// TestPaperPresetsEndToEnd's OpenVLA heads), and SigLIP fc1 + bias / fc2 and
// q/k/v + biases / out_proj.
var exportRecipe = Recipe{Name: "export", Rules: []Rule{
	{Module: ModLLMFFN, Ratio: 0.3, Direction: DirHighest},
	{Module: ModLLMHead, Ratio: 0.5, Direction: DirHighest},
	{Module: ModSigLIPFFN, Ratio: 0.25, Direction: DirLowest},
	{Module: ModSigLIPHead, Ratio: 0.5, Direction: DirHighest},
}}

func exportMask(t *testing.T) *Mask {
	t.Helper()
	m, err := Resolve(fixtureResult(t), exportRecipe)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type cellSet struct {
	rows, cols map[int64]bool
}

func cells(t *TensorMask) cellSet {
	s := cellSet{map[int64]bool{}, map[int64]bool{}}
	if t != nil {
		for _, r := range t.Rows {
			s.rows[int64(r)] = true
		}
		for _, c := range t.Cols {
			s.cols[int64(c)] = true
		}
	}
	return s
}

// elementGrid gives the (row, col) of element i of a tensor stored row-major.
func rowCol(shape []int64, i int64) (int64, int64) {
	if len(shape) < 2 {
		return i, 0
	}
	cols := elements(shape[1:])
	return i / cols, i % cols
}

func TestWriteMaskedEveryByte(t *testing.T) {
	m := exportMask(t)
	vla := openFixtureVLA(t)
	defer vla.Close()
	dir := filepath.Join(t.TempDir(), "masked")
	if err := WriteMasked(context.Background(), dir, m, vla); err != nil {
		t.Fatal(err)
	}
	orig := readAll(t, fixtures+"/vla/model.safetensors")
	got := readAll(t, filepath.Join(dir, "model.safetensors"))
	if len(got) != len(orig) {
		t.Fatalf("size %d, want %d", len(got), len(orig))
	}
	h, err := safetensors.ParseHeader(orig[8:8+int(leU64(orig))], int64(len(orig)), "orig", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:h.DataOffset], orig[:h.DataOffset]) {
		t.Fatal("header bytes differ")
	}
	zeroed, masked := 0, 0
	for _, e := range h.Entries {
		tm := m.Tensor(e.Name)
		if tm != nil {
			masked++
		}
		set := cells(tm)
		es := e.DType.Bits() / 8
		for i := int64(0); i < e.Elements(); i++ {
			r, c := rowCol(e.Shape, i)
			at := h.DataOffset + e.Begin + i*es
			want := orig[at : at+es]
			if set.rows[r] || set.cols[c] && len(e.Shape) == 2 {
				want = make([]byte, es)
				zeroed++
			}
			if !bytes.Equal(got[at:at+es], want) {
				t.Fatalf("%s element %d (row %d col %d): got %x want %x", e.Name, i, r, c, got[at:at+es], want)
			}
		}
	}
	if masked != len(m.Tensors) || zeroed == 0 {
		t.Errorf("%d masked tensors seen of %d, %d cells zeroed", masked, len(m.Tensors), zeroed)
	}
	var r Recipe
	if err := json.Unmarshal(readAll(t, filepath.Join(dir, RecipeFile)), &r); err != nil || r.Name != "export" {
		t.Errorf("recipe file: %v %+v", err, r)
	}
	if err := WriteMasked(context.Background(), dir, m, vla); err == nil {
		t.Error("writing over an existing export should fail")
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".masked.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary folders left behind: %v", leftovers)
	}
}

func leU64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func TestWriteSlicedShapesAndCount(t *testing.T) {
	m := exportMask(t)
	vla := openFixtureVLA(t)
	defer vla.Close()
	dir := filepath.Join(t.TempDir(), "sliced")
	if err := WriteSliced(context.Background(), dir, m, vla); err != nil {
		t.Fatal(err)
	}
	out, err := checkpoint.OpenSide([]string{dir + "/model.safetensors"}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if out.Params() != m.Params.After {
		t.Errorf("sliced checkpoint has %d parameters, mask says %d", out.Params(), m.Params.After)
	}
	orig := map[string]*checkpoint.Tensor{}
	for _, ot := range vla.Tensors {
		orig[ot.Name] = ot
	}
	if len(out.Tensors) != len(vla.Tensors) {
		t.Fatalf("%d tensors, want %d", len(out.Tensors), len(vla.Tensors))
	}
	for _, st := range out.Tensors {
		ot := orig[st.Name]
		tm := m.Tensor(st.Name)
		want := ot.Shape
		if tm != nil {
			want = tm.KeptShape()
		}
		if !slices.Equal(st.Shape, want) || st.DType != ot.DType {
			t.Errorf("%s: %v %v, want %v %v", st.Name, st.DType, st.Shape, ot.DType, want)
			continue
		}
		// Kept cells keep their bytes, in order.
		ob := make([]byte, ot.Size)
		sb := make([]byte, st.Size)
		if err := ot.ReadAt(ob, 0); err != nil {
			t.Fatal(err)
		}
		if err := st.ReadAt(sb, 0); err != nil {
			t.Fatal(err)
		}
		set := cells(tm)
		es := ot.DType.Bits() / 8
		var expect []byte
		for i := int64(0); i < ot.Elements(); i++ {
			r, c := rowCol(ot.Shape, i)
			if set.rows[r] || set.cols[c] && len(ot.Shape) == 2 {
				continue
			}
			expect = append(expect, ob[i*es:(i+1)*es]...)
		}
		if !bytes.Equal(sb, expect) {
			t.Errorf("%s: kept values differ", st.Name)
		}
	}
	var patch struct {
		ParamsAfter int64              `json:"params_after"`
		Widths      map[string]*Widths `json:"widths"`
	}
	if err := json.Unmarshal(readAll(t, filepath.Join(dir, WidthsFile)), &patch); err != nil {
		t.Fatal(err)
	}
	if patch.ParamsAfter != m.Params.After {
		t.Errorf("widths.json params_after %d", patch.ParamsAfter)
	}
	for l := range 3 {
		gate := m.Tensor(layerName(llmPrefix, l, "mlp.gate_proj.weight"))
		want := 512
		if gate != nil {
			want -= len(gate.Rows)
		}
		if got := patch.Widths["llm"].IntermediateSize[l]; got != want {
			t.Errorf("llm layer %d intermediate size %d, want %d", l, got, want)
		}
	}
}

func TestWriteMasksAndIndices(t *testing.T) {
	m := exportMask(t)
	vla := openFixtureVLA(t)
	defer vla.Close()
	var buf bytes.Buffer
	if err := WriteMasks(context.Background(), &buf, m, vla); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	h, err := safetensors.ParseHeader(data[8:8+int(leU64(data))], int64(len(data)), "masks", 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range h.Entries {
		name, dim := strings.TrimSuffix(e.Name, RowsSuffix), 0
		if name == e.Name {
			name, dim = strings.TrimSuffix(e.Name, ColsSuffix), 1
		}
		tm := m.Tensor(name)
		if tm == nil || e.Shape[0] != tm.Shape[dim] {
			t.Fatalf("%s: no such masked tensor or wrong length", e.Name)
		}
		pruned := tm.Rows
		if dim == 1 {
			pruned = tm.Cols
		}
		keep := data[h.DataOffset+e.Begin : h.DataOffset+e.End]
		for i, k := range keep {
			if want := !slices.Contains(pruned, int32(i)); (k == 1) != want || k > 1 {
				t.Fatalf("%s[%d] = %d", e.Name, i, k)
			}
		}
		seen++
	}
	if seen == 0 || !strings.Contains(h.Metadata["deltascope_recipe"], `"export"`) {
		t.Errorf("%d masks, metadata %v", seen, h.Metadata)
	}
	if s := MaskSnippet("m.safetensors"); !strings.Contains(s, `"m.safetensors"`) || !strings.Contains(s, "load_file") {
		t.Errorf("snippet:\n%s", s)
	}

	buf.Reset()
	if err := WriteIndices(context.Background(), &buf, m); err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Recipe  Recipe `json:"recipe"`
		Tensors map[string]struct {
			Shape []int64 `json:"shape"`
			Rows  []int32 `json:"rows"`
			Cols  []int32 `json:"cols"`
		} `json:"tensors"`
	}
	if err := json.Unmarshal(buf.Bytes(), &idx); err != nil {
		t.Fatalf("indices are not JSON: %v", err)
	}
	if len(idx.Tensors) != len(m.Tensors) {
		t.Fatalf("%d tensors, want %d", len(idx.Tensors), len(m.Tensors))
	}
	for _, tm := range m.Tensors {
		got := idx.Tensors[tm.Name]
		if !slices.Equal(got.Rows, tm.Rows) || !slices.Equal(got.Cols, tm.Cols) || !slices.Equal(got.Shape, tm.Shape) {
			t.Errorf("%s differs", tm.Name)
		}
	}
	// The recipe inside the indices replays to the same mask.
	again, err := Resolve(fixtureResult(t), idx.Recipe)
	if err != nil || !reflect.DeepEqual(again, m) {
		t.Errorf("recipe from indices resolves differently (%v)", err)
	}
}

func TestRecipeRoundTrip(t *testing.T) {
	res := fixtureResult(t)
	for _, r := range []Recipe{exportRecipe, {Name: "all fields", Note: "n", Analysis: "a1", BaseFingerprint: "b", VLAFingerprint: "v", EngineVersion: "1",
		Rules: []Rule{{Module: ModLLMFFN, Ratio: 0.2, Direction: DirRandom, Seed: 1 << 60, Metric: "relative", Variant: "mean", Scope: ScopeLayer, Protected: []int{2}, RoundTo: 8}}}} {
		m1, err := Resolve(res, r)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteRecipe(&buf, m1.Recipe); err != nil {
			t.Fatal(err)
		}
		back, err := ReadRecipe(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Errorf("recipe changed in the round trip:\n%+v\n%+v", back, r)
		}
		m2, err := Resolve(res, back)
		if err != nil || !reflect.DeepEqual(m1, m2) {
			t.Errorf("%s: replayed recipe gives another mask (%v)", r.Name, err)
		}
	}
}

func TestRecipeValidation(t *testing.T) {
	ok := Rule{Module: ModLLMFFN, Ratio: 0.1, Direction: DirHighest}
	with := func(f func(*Rule)) Recipe {
		r := ok
		f(&r)
		return Recipe{Rules: []Rule{r}}
	}
	for _, tc := range []struct {
		name, want string
		r          Recipe
	}{
		{"ratio 1", "ratio 1 must be in [0, 1)", with(func(r *Rule) { r.Ratio = 1 })},
		{"negative ratio", "must be in [0, 1)", with(func(r *Rule) { r.Ratio = -0.1 })},
		{"unknown module", `unknown module "llm.mlp"`, with(func(r *Rule) { r.Module = "llm.mlp" })},
		{"duplicate", "already has rule 1", Recipe{Rules: []Rule{ok, ok}}},
		{"direction", `direction "up"`, with(func(r *Rule) { r.Direction = "up" })},
		{"metric", `metric "l1"`, with(func(r *Rule) { r.Metric = "l1" })},
		{"variant", `variant "x"`, with(func(r *Rule) { r.Variant = "x" })},
		{"scope", `scope "all"`, with(func(r *Rule) { r.Scope = "all" })},
		{"protected", "protected layer -1", with(func(r *Rule) { r.Protected = []int{-1} })},
		{"round_to", "round_to -2", with(func(r *Rule) { r.RoundTo = -2 })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := (Recipe{Rules: []Rule{ok}}).Validate(); err != nil {
		t.Errorf("valid recipe refused: %v", err)
	}
	for _, bad := range []string{`{"rules":[{"module":"llm.ffn_channel","ration":0.1,"direction":"highest"}]}`, `{"rules":[]} x`, `[`} {
		if _, err := ReadRecipe(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadRecipe accepted %s", bad)
		}
	}
}

func TestTorchPickleVLARefused(t *testing.T) {
	side, err := checkpoint.OpenSide([]string{fixtures + "/base_pickle/pytorch_model.bin"}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	dir := filepath.Join(t.TempDir(), "x")
	err = WriteMasked(context.Background(), dir, &Mask{}, side)
	if err == nil || !strings.Contains(err.Error(), "torch pickle") {
		t.Errorf("got %v", err)
	}
	if _, statErr := os.Stat(dir); statErr == nil {
		t.Error("a folder was left")
	}
}

// TestShardedExports uses the 4-shard base fixture as the "VLA" (against itself:
// ΔW is zero, so the selection falls to position order) to check that shards,
// the index and config survive: masked copies the index verbatim, sliced
// rewrites its total_size.
func TestShardedExports(t *testing.T) {
	side := openSide(t, fixtures+"/base")
	m := shardedMask(t, side)
	if len(m.Tensors) == 0 {
		t.Fatal("nothing masked")
	}
	dir := t.TempDir()
	masked, sliced := filepath.Join(dir, "masked"), filepath.Join(dir, "sliced")
	if err := WriteMasked(context.Background(), masked, m, side); err != nil {
		t.Fatal(err)
	}
	if err := WriteSliced(context.Background(), sliced, m, side); err != nil {
		t.Fatal(err)
	}
	idx := readAll(t, filepath.Join(fixtures, "base", checkpoint.IndexName))
	if !bytes.Equal(readAll(t, filepath.Join(masked, checkpoint.IndexName)), idx) {
		t.Error("masked export changed the index")
	}
	for _, f := range side.Sources[0].Files {
		if _, err := os.Stat(filepath.Join(masked, filepath.Base(f.Path))); err != nil {
			t.Errorf("masked export lacks shard %s", filepath.Base(f.Path))
		}
	}
	out, err := checkpoint.OpenSide([]string{sliced}, checkpoint.Options{}) // validates the rewritten index and its total_size
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if out.Sources[0].Format != checkpoint.FormatSharded || len(out.Sources[0].Files) != len(side.Sources[0].Files) {
		t.Errorf("sliced export is %s with %d files", out.Sources[0].Format, len(out.Sources[0].Files))
	}
	if out.Params() != m.Params.After || m.Params.After >= m.Params.Before {
		t.Errorf("sliced has %d parameters, mask says %d (before %d)", out.Params(), m.Params.After, m.Params.Before)
	}
	back, err := checkpoint.OpenSide([]string{masked}, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	back.Close()
}
