package synth

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
	"github.com/deltascope/deltascope/internal/testfixtures"
)

func params(files []File) int64 {
	var n int64
	for _, f := range files {
		for _, t := range f.Tensors {
			e := int64(1)
			for _, d := range t.Shape {
				e *= d
			}
			n += e
		}
	}
	return n
}

func TestParamCountsAtScaleOne(t *testing.T) {
	// TinyLlama-1.1B from its config: embed + lm_head 2·32000·2048, 22 layers of
	// q,o 2048² + k,v 256·2048 + gate,up,down 5632·2048 + 2 norms, final norm.
	const tinyLayer = 2*2048*2048 + 2*256*2048 + 3*5632*2048 + 2*2048
	const tiny = 2*32000*2048 + 22*tinyLayer + 2048
	cases := []struct {
		preset    string
		base, vla int64
	}{
		// Prismatic's base already has the 32,064-row vocabulary (the authors'
		// orig_model_weights.txt), so both sides count the same.
		{"openvla-7b", 7_541_237_184, 7_541_237_184},
		{"tinyllama", tiny, tiny},
		// PaliGemma-3B (257216 vocab, lm_head tied and not stored) and π0.5 as the
		// authors' pi05_libero lists it (testdata/pi05_libero_params.txt).
		{"pi05", 2_923_466_480, 3_616_757_520},
	}
	for _, c := range cases {
		t.Run(c.preset, func(t *testing.T) {
			base, vla, err := Layout(c.preset, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := params(base); got != c.base {
				t.Errorf("base params = %d, want %d", got, c.base)
			}
			if got := params(vla); got != c.vla {
				t.Errorf("VLA params = %d, want %d", got, c.vla)
			}
		})
	}
	if tiny != 1_100_048_384 {
		t.Errorf("TinyLlama formula gives %d, the model card's count is 1,100,048,384", tiny)
	}
}

// shapesByName flattens a side into analysis names (prefix + stored name).
func shapesByName(t *testing.T, files []File) map[string]safetensors.WriteTensor {
	t.Helper()
	out := map[string]safetensors.WriteTensor{}
	for _, f := range files {
		for _, tt := range f.Tensors {
			name := f.Prefix + tt.Name
			if _, dup := out[name]; dup {
				t.Errorf("%s: %q appears twice on one side", f.Path, name)
			}
			out[name] = tt
		}
	}
	return out
}

// TestPi05IsTheAuthorsTensorList compares the π0.5 preset's VLA at scale 1 with
// the tensor list the paper's authors printed for pi05_libero
// (paligemma_pi05/params_info_pi05_libero/pi05_libero_params.txt in
// Niannnnnn/VLA_Parameter_Redundancy_VLM2VLA): the same 812 names, the same
// shapes, 3,616,757,520 parameters. (Their list is all BF16, as loaded for
// evaluation; the preset keeps openpi's F32 vectors.)
func TestPi05IsTheAuthorsTensorList(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "pi05_libero_params.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int64{}
	var total int64
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || !strings.HasPrefix(f[1], "shape=(") {
			t.Fatalf("line %d: %q is not NAME\tshape=(...)\tdtype=...\tnumel=N", i+1, line)
		}
		var shape []int64
		for _, d := range strings.Split(strings.Trim(strings.TrimPrefix(f[1], "shape="), "(),"), ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
			if err != nil {
				t.Fatalf("line %d: shape %q: %v", i+1, f[1], err)
			}
			shape = append(shape, n)
		}
		numel, err := strconv.ParseInt(strings.TrimPrefix(f[3], "numel="), 10, 64)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		want[f[0]] = shape
		total += numel
	}
	if len(want) != 812 || total != 3_616_757_520 {
		t.Fatalf("the authors' list has %d tensors and %d parameters, want 812 and 3,616,757,520", len(want), total)
	}
	_, vla, err := Layout("pi05", 1)
	if err != nil {
		t.Fatal(err)
	}
	got := shapesByName(t, vla)
	for name, shape := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%q [%v] is missing", name, shape)
		case !slices.Equal(g.Shape, shape):
			t.Errorf("%q is %v, the authors' list says %v", name, g.Shape, shape)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%q is not in the authors' list", name)
		}
	}
	if n := params(vla); n != total {
		t.Errorf("VLA params = %d, want %d", n, total)
	}
}

func TestRealShapesAtScaleOne(t *testing.T) {
	type want struct {
		dtype tensor.DType
		shape []int64
	}
	cases := map[string]struct {
		base, vla map[string]want
	}{
		"openvla-7b": {
			vla: map[string]want{
				"vision_backbone.featurizer.cls_token":                       {tensor.BF16, []int64{1, 1, 1024}},
				"vision_backbone.featurizer.reg_token":                       {tensor.BF16, []int64{1, 4, 1024}},
				"vision_backbone.featurizer.pos_embed":                       {tensor.BF16, []int64{1, 256, 1024}},
				"vision_backbone.featurizer.patch_embed.proj.weight":         {tensor.BF16, []int64{1024, 3, 14, 14}},
				"vision_backbone.featurizer.blocks.23.attn.qkv.weight":       {tensor.BF16, []int64{3072, 1024}},
				"vision_backbone.featurizer.blocks.0.ls1.scale_factor":       {tensor.BF16, []int64{1024}},
				"vision_backbone.featurizer.blocks.0.mlp.fc1.weight":         {tensor.BF16, []int64{4096, 1024}},
				"vision_backbone.fused_featurizer.blocks.26.attn.qkv.weight": {tensor.BF16, []int64{3456, 1152}},
				"vision_backbone.fused_featurizer.blocks.0.mlp.fc1.weight":   {tensor.BF16, []int64{4304, 1152}},
				"vision_backbone.fused_featurizer.attn_pool.kv.weight":       {tensor.BF16, []int64{2304, 1152}},
				"vision_backbone.fused_featurizer.attn_pool.latent":          {tensor.BF16, []int64{1, 1, 1152}},
				"projector.fc1.weight":                                       {tensor.BF16, []int64{8704, 2176}},
				"projector.fc2.weight":                                       {tensor.BF16, []int64{4096, 8704}},
				"projector.fc3.bias":                                         {tensor.BF16, []int64{4096}},
				"language_model.model.embed_tokens.weight":                   {tensor.BF16, []int64{32064, 4096}},
				"language_model.model.layers.31.self_attn.k_proj.weight":     {tensor.BF16, []int64{4096, 4096}},
				"language_model.model.layers.0.mlp.down_proj.weight":         {tensor.BF16, []int64{4096, 11008}},
				"language_model.model.norm.weight":                           {tensor.BF16, []int64{4096}},
				"language_model.lm_head.weight":                              {tensor.BF16, []int64{32064, 4096}},
			},
			base: map[string]want{
				"model.projector.projector.0.weight":                                     {tensor.BF16, []int64{8704, 2176}},
				"model.projector.projector.4.bias":                                       {tensor.BF16, []int64{4096}},
				"model.llm_backbone.llm.model.embed_tokens.weight":                       {tensor.BF16, []int64{32064, 4096}},
				"model.llm_backbone.llm.model.layers.3.mlp.gate_proj.weight":             {tensor.BF16, []int64{11008, 4096}},
				"model.llm_backbone.llm.lm_head.weight":                                  {tensor.BF16, []int64{32064, 4096}},
				"vision_backbone.featurizer.blocks.5.ls2.gamma":                          {tensor.BF16, []int64{1024}},
				"vision_backbone.fused_featurizer.blocks.5.attn.proj.weight":             {tensor.BF16, []int64{1152, 1152}},
				"vision_backbone.fused_featurizer.attn_pool.mlp.fc2.weight":              {tensor.BF16, []int64{1152, 4304}},
				"model.llm_backbone.llm.model.layers.31.post_attention_layernorm.weight": {tensor.BF16, []int64{4096}},
			},
		},
		"pi05": {
			vla: map[string]want{
				"paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight":    {tensor.BF16, []int64{1152, 3, 14, 14}},
				"paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.bias":      {tensor.F32, []int64{1152}},
				"paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.position_embedding.weight": {tensor.BF16, []int64{256, 1152}},
				"paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.26.mlp.fc1.weight":     {tensor.BF16, []int64{4304, 1152}},
				"paligemma_with_expert.paligemma.model.vision_tower.vision_model.post_layernorm.weight":                {tensor.F32, []int64{1152}},
				"paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight":                            {tensor.BF16, []int64{2048, 1152}},
				"paligemma_with_expert.paligemma.lm_head.weight":                                                       {tensor.BF16, []int64{257152, 2048}},
				"paligemma_with_expert.paligemma.model.language_model.layers.17.self_attn.q_proj.weight":               {tensor.BF16, []int64{2048, 2048}},
				"paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.k_proj.weight":                {tensor.BF16, []int64{256, 2048}},
				"paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.gate_proj.weight":                   {tensor.BF16, []int64{16384, 2048}},
				"paligemma_with_expert.paligemma.model.language_model.layers.0.mlp.down_proj.weight":                   {tensor.BF16, []int64{2048, 16384}},
				"paligemma_with_expert.gemma_expert.model.layers.17.self_attn.q_proj.weight":                           {tensor.BF16, []int64{2048, 1024}},
				"paligemma_with_expert.gemma_expert.model.layers.0.self_attn.v_proj.weight":                            {tensor.BF16, []int64{256, 1024}},
				"paligemma_with_expert.gemma_expert.model.layers.0.self_attn.o_proj.weight":                            {tensor.BF16, []int64{1024, 2048}},
				"paligemma_with_expert.gemma_expert.model.layers.0.mlp.up_proj.weight":                                 {tensor.BF16, []int64{4096, 1024}},
				"paligemma_with_expert.gemma_expert.model.layers.0.mlp.down_proj.weight":                               {tensor.BF16, []int64{1024, 4096}},
				"paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.dense.weight":                       {tensor.BF16, []int64{3072, 1024}},
				"paligemma_with_expert.gemma_expert.model.layers.0.post_attention_layernorm.dense.bias":                {tensor.F32, []int64{3072}},
				"paligemma_with_expert.gemma_expert.model.norm.dense.weight":                                           {tensor.BF16, []int64{3072, 1024}},
				"action_in_proj.weight":  {tensor.BF16, []int64{1024, 32}},
				"action_out_proj.weight": {tensor.BF16, []int64{32, 1024}},
				"time_mlp_in.weight":     {tensor.BF16, []int64{1024, 1024}},
				"time_mlp_out.bias":      {tensor.F32, []int64{1024}},
			},
			base: map[string]want{
				"vision_tower.vision_model.embeddings.patch_embedding.weight": {tensor.F32, []int64{1152, 3, 14, 14}},
				"multi_modal_projector.linear.bias":                           {tensor.F32, []int64{2048}},
				"language_model.model.embed_tokens.weight":                    {tensor.F32, []int64{257216, 2048}},
				"language_model.model.layers.17.self_attn.v_proj.weight":      {tensor.F32, []int64{256, 2048}},
				"language_model.model.norm.weight":                            {tensor.F32, []int64{2048}},
			},
		},
		"tinyllama": {
			vla: map[string]want{
				"model.embed_tokens.weight":               {tensor.BF16, []int64{32000, 2048}},
				"model.layers.21.self_attn.k_proj.weight": {tensor.BF16, []int64{256, 2048}},
				"model.layers.0.mlp.up_proj.weight":       {tensor.BF16, []int64{5632, 2048}},
				"model.layers.0.input_layernorm.weight":   {tensor.BF16, []int64{2048}},
				"lm_head.weight":                          {tensor.BF16, []int64{32000, 2048}},
			},
		},
	}
	for preset, c := range cases {
		t.Run(preset, func(t *testing.T) {
			base, vla, err := Layout(preset, 1)
			if err != nil {
				t.Fatal(err)
			}
			for side, w := range map[string]struct {
				got  map[string]safetensors.WriteTensor
				want map[string]want
			}{"base": {shapesByName(t, base), c.base}, "vla": {shapesByName(t, vla), c.vla}} {
				for name, wt := range w.want {
					g, ok := w.got[name]
					if !ok {
						t.Errorf("%s: %q missing", side, name)
						continue
					}
					if g.DType != wt.dtype || !slices.Equal(g.Shape, wt.shape) {
						t.Errorf("%s: %q is %v %v, want %v %v", side, name, g.DType, g.Shape, wt.dtype, wt.shape)
					}
				}
			}
		})
	}
}

func TestFixtureNamesForPi05(t *testing.T) {
	// Every name of the real pi05 fixture, with its layer indices, must exist in
	// the preset on the same side: the generator follows the same naming.
	for _, side := range []struct {
		fixture string
		vla     bool
	}{
		{"pi05/vla/model.safetensors", true},
		{"pi05/base/model-00001-of-00004.safetensors", false},
		{"pi05/base/model-00004-of-00004.safetensors", false},
	} {
		data, err := os.ReadFile(testfixtures.Path(side.fixture))
		if err != nil {
			t.Fatalf("fixture: %v", err)
		}
		names, _ := parseFile(t, data)
		base, vla, err := Layout("pi05", 0.05)
		if err != nil {
			t.Fatal(err)
		}
		files := base
		if side.vla {
			files = vla
		}
		have := shapesByName(t, files)
		for _, n := range names {
			// The fixture stores the tied PaliGemma embedding twice (embed_tokens
			// and lm_head); pi05_libero, which the preset follows, only as lm_head.
			if n == "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight" {
				continue
			}
			if _, ok := have[n]; !ok {
				t.Errorf("fixture tensor %q (%s) has no counterpart in the pi05 preset", n, filepath.Base(side.fixture))
			}
		}
	}
}

type parsedTensor struct {
	dtype string
	shape []int64
	data  []byte
}

// parseFile decodes a safetensors file minimally (8-byte LE length, JSON), in
// header order, independent of the package under test.
func parseFile(t *testing.T, file []byte) ([]string, map[string]parsedTensor) {
	t.Helper()
	n := binary.LittleEndian.Uint64(file[:8])
	if n%8 != 0 || 8+n > uint64(len(file)) {
		t.Fatalf("bad header length %d for %d bytes", n, len(file))
	}
	dec := json.NewDecoder(bytes.NewReader(file[8 : 8+n]))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var names []string
	out := map[string]parsedTensor{}
	data := file[8+n:]
	var end int64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		key := tok.(string)
		var e struct {
			DType   string   `json:"dtype"`
			Shape   []int64  `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		if key == "__metadata__" {
			continue
		}
		if e.Offsets[0] != end || e.Offsets[1] < e.Offsets[0] || e.Offsets[1] > int64(len(data)) {
			t.Fatalf("%q: offsets %v not contiguous from %d within %d bytes", key, e.Offsets, end, len(data))
		}
		end = e.Offsets[1]
		names = append(names, key)
		out[key] = parsedTensor{e.DType, e.Shape, data[e.Offsets[0]:e.Offsets[1]]}
	}
	if end != int64(len(data)) {
		t.Fatalf("data section is %d bytes, tensors cover %d", len(data), end)
	}
	return names, out
}

// decode returns a tensor's values as float64 (BF16 or F32).
func decode(t *testing.T, p parsedTensor) []float64 {
	t.Helper()
	switch p.dtype {
	case "BF16":
		out := make([]float64, len(p.data)/2)
		for i := range out {
			out[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(p.data[2*i:])) << 16))
		}
		return out
	case "F32":
		out := make([]float64, len(p.data)/4)
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(p.data[4*i:])))
		}
		return out
	}
	t.Fatalf("unexpected dtype %s", p.dtype)
	return nil
}

// readSide parses every file of a side, keyed by analysis name (prefix + stored).
func readSide(t *testing.T, dir string, files []File) map[string]parsedTensor {
	t.Helper()
	out := map[string]parsedTensor{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		names, tensors := parseFile(t, data)
		// The package's own parser must accept it too.
		if _, err := safetensors.ReadHeader(bytes.NewReader(data), int64(len(data)), f.Path, 0, 1<<20); err != nil {
			t.Errorf("ReadHeader: %v", err)
		}
		want := make([]string, len(f.Tensors))
		for i, tt := range f.Tensors {
			want[i] = tt.Name
			p := tensors[tt.Name]
			if p.dtype != tt.DType.String() || !slices.Equal(p.shape, tt.Shape) {
				t.Errorf("%s: %q is %s %v on disk, Layout says %v %v", f.Path, tt.Name, p.dtype, p.shape, tt.DType, tt.Shape)
			}
		}
		if !slices.Equal(names, want) {
			t.Errorf("%s: names on disk differ from Layout (%d vs %d tensors)", f.Path, len(names), len(want))
		}
		for n, p := range tensors {
			out[f.Prefix+n] = p
		}
	}
	return out
}

const testScale = 0.03

func generate(t testing.TB, preset string, shapeOnly bool) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := Generate(context.Background(), Options{Preset: preset, Scale: testScale, Out: dir, ShapeOnly: shapeOnly, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGenerateMatchesLayout(t *testing.T) {
	for _, preset := range Presets() {
		t.Run(preset, func(t *testing.T) {
			dir := generate(t, preset, false)
			base, vla, err := Layout(preset, testScale)
			if err != nil {
				t.Fatal(err)
			}
			b := readSide(t, dir, base)
			v := readSide(t, dir, vla)
			for name, p := range v {
				for _, x := range decode(t, p) {
					if math.IsNaN(x) || math.IsInf(x, 0) {
						t.Fatalf("%s: non-finite value", name)
					}
				}
			}
			// pair.json lists the SRC specs; every path exists.
			var pair Pair
			data, err := os.ReadFile(filepath.Join(dir, "pair.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &pair); err != nil {
				t.Fatal(err)
			}
			if len(pair.Base) == 0 || len(pair.VLA) == 0 {
				t.Fatalf("pair.json = %s", data)
			}
			for _, src := range append(pair.Base, pair.VLA...) {
				_, path, _ := strings.Cut(src, "=")
				if !strings.Contains(src, "=") {
					path = src
				}
				if _, err := os.Stat(filepath.Join(dir, path)); err != nil {
					t.Errorf("pair.json source %q: %v", src, err)
				}
			}
			for _, side := range []string{"base", "vla"} {
				if _, err := os.Stat(filepath.Join(dir, side, "config.json")); err != nil {
					t.Errorf("%s/config.json: %v", side, err)
				}
			}
			if len(b) == 0 || len(v) == 0 {
				t.Fatalf("empty side: base %d, vla %d tensors", len(b), len(v))
			}
		})
	}
}

func TestShardedIndex(t *testing.T) {
	for _, c := range []struct{ preset, dir string }{{"openvla-7b", "vla"}, {"pi05", "base"}} {
		t.Run(c.preset, func(t *testing.T) {
			dir := generate(t, c.preset, true)
			var idx struct {
				Metadata struct {
					TotalSize int64 `json:"total_size"`
				} `json:"metadata"`
				WeightMap map[string]string `json:"weight_map"`
			}
			data, err := os.ReadFile(filepath.Join(dir, c.dir, "model.safetensors.index.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &idx); err != nil {
				t.Fatal(err)
			}
			base, vla, _ := Layout(c.preset, testScale)
			files := base
			if c.dir == "vla" {
				files = vla
			}
			if len(files) != 3 {
				t.Fatalf("%d shards, want 3", len(files))
			}
			var total int64
			count := 0
			for i, f := range files {
				wantName := "model-0000" + string(rune('1'+i)) + "-of-00003.safetensors"
				if filepath.Base(f.Path) != wantName {
					t.Errorf("shard %d is %s, want %s", i, f.Path, wantName)
				}
				n, _ := safetensors.DataSize(f.Tensors)
				total += n
				for _, tt := range f.Tensors {
					count++
					if idx.WeightMap[tt.Name] != wantName {
						t.Errorf("weight_map[%q] = %q, want %q", tt.Name, idx.WeightMap[tt.Name], wantName)
					}
				}
			}
			if idx.Metadata.TotalSize != total || len(idx.WeightMap) != count {
				t.Errorf("index total_size %d with %d entries, want %d with %d", idx.Metadata.TotalSize, len(idx.WeightMap), total, count)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	a := generate(t, "openvla-7b", false)
	old := runtime.GOMAXPROCS(1)
	b := generate(t, "openvla-7b", false)
	runtime.GOMAXPROCS(old)
	for _, f := range []string{"vla/model-00001-of-00003.safetensors", "vla/model-00003-of-00003.safetensors", "base/prismatic.safetensors", "base/siglip.safetensors", "pair.json", "vla/config.json", "vla/model.safetensors.index.json"} {
		x, err := os.ReadFile(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs (GOMAXPROCS %d vs 1)", f, old)
		}
	}
	// A different seed gives different values with the same layout.
	c := t.TempDir()
	if _, err := Generate(context.Background(), Options{Preset: "openvla-7b", Scale: testScale, Out: c, Seed: 8}); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(filepath.Join(a, "base/prismatic.safetensors"))
	y, _ := os.ReadFile(filepath.Join(c, "base/prismatic.safetensors"))
	if len(x) != len(y) || bytes.Equal(x, y) {
		t.Errorf("seed 8 vs 7: sizes %d/%d, equal=%v; want same size, different bytes", len(x), len(y), bytes.Equal(x, y))
	}
}

func TestShapeOnlyIsSparse(t *testing.T) {
	dir := generate(t, "openvla-7b", true)
	_, vla, _ := Layout("openvla-7b", testScale)
	for _, f := range vla {
		path := filepath.Join(dir, f.Path)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, tensors := parseFile(t, data) // checks that the data covers the file exactly
		ds, _ := safetensors.DataSize(f.Tensors)
		hdr := int64(8 + binary.LittleEndian.Uint64(data[:8]))
		if st.Size() != hdr+ds {
			t.Errorf("%s: size %d, want header %d + data %d", f.Path, st.Size(), hdr, ds)
		}
		if len(tensors) != len(f.Tensors) {
			t.Errorf("%s: %d tensors, want %d", f.Path, len(tensors), len(f.Tensors))
		}
		if bytes.ContainsFunc(data[hdr:], func(r rune) bool { return r != 0 }) {
			t.Errorf("%s: shape-only data is not all zeros", f.Path)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			t.Fatal("no Stat_t")
		}
		if used := sys.Blocks * 512; used > hdr+64<<10 || used*4 > st.Size() {
			t.Errorf("%s: %d bytes on disk for a %d-byte file: not sparse", f.Path, used, st.Size())
		}
	}
}

func TestFrozenAndDivergence(t *testing.T) {
	for _, c := range []struct {
		preset string
		frozen []struct{ base, vla string }
	}{
		{"openvla-7b", []struct{ base, vla string }{
			{"vision_backbone.featurizer.patch_embed.proj.weight", "vision_backbone.featurizer.patch_embed.proj.weight"},
			{"vision_backbone.fused_featurizer.patch_embed.proj.bias", "vision_backbone.fused_featurizer.patch_embed.proj.bias"},
			{"vision_backbone.fused_featurizer.attn_pool.kv.weight", "vision_backbone.fused_featurizer.attn_pool.kv.weight"},
			// Prismatic reads the second-to-last block: the last block of each
			// encoder and the final norm never see a gradient.
			{"vision_backbone.featurizer.blocks.23.attn.qkv.weight", "vision_backbone.featurizer.blocks.23.attn.qkv.weight"},
			{"vision_backbone.featurizer.blocks.23.mlp.fc1.weight", "vision_backbone.featurizer.blocks.23.mlp.fc1.weight"},
			{"vision_backbone.featurizer.blocks.23.ls2.gamma", "vision_backbone.featurizer.blocks.23.ls2.scale_factor"},
			{"vision_backbone.featurizer.norm.weight", "vision_backbone.featurizer.norm.weight"},
			{"vision_backbone.fused_featurizer.blocks.26.attn.proj.weight", "vision_backbone.fused_featurizer.blocks.26.attn.proj.weight"},
			{"vision_backbone.fused_featurizer.blocks.26.mlp.fc1.bias", "vision_backbone.fused_featurizer.blocks.26.mlp.fc1.bias"},
			{"vision_backbone.fused_featurizer.blocks.26.mlp.fc2.weight", "vision_backbone.fused_featurizer.blocks.26.mlp.fc2.weight"},
		}},
		{"pi05", []struct{ base, vla string }{
			{"vision_tower.vision_model.embeddings.patch_embedding.weight", "paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.weight"},
			{"vision_tower.vision_model.embeddings.patch_embedding.bias", "paligemma_with_expert.paligemma.model.vision_tower.vision_model.embeddings.patch_embedding.bias"},
		}},
	} {
		t.Run(c.preset, func(t *testing.T) {
			dir := generate(t, c.preset, false)
			base, vla, _ := Layout(c.preset, testScale)
			b, v := readSide(t, dir, base), readSide(t, dir, vla)
			for _, f := range c.frozen {
				bv, vv := decode(t, b[f.base]), decode(t, v[f.vla])
				if len(bv) == 0 || !slices.Equal(bv, vv) {
					t.Errorf("frozen %s: base and VLA values differ (or are empty)", f.vla)
				}
			}
			if c.preset != "openvla-7b" {
				return
			}
			// The blocks before the last do move.
			for _, n := range []string{"vision_backbone.featurizer.blocks.22.mlp.fc1.weight", "vision_backbone.fused_featurizer.blocks.25.attn.qkv.weight"} {
				if slices.Equal(decode(t, b[n]), decode(t, v[n])) {
					t.Errorf("%s: no divergence, but only the last block is frozen", n)
				}
			}
		})
	}
}

// relDelta is ‖ΔW‖/‖W_base‖ over the overlapping leading rows.
func relDelta(t *testing.T, b, v parsedTensor) float64 {
	bv, vv := decode(t, b), decode(t, v)
	n := min(len(bv), len(vv))
	var d2, b2 float64
	for i := range n {
		d := vv[i] - bv[i]
		d2 += d * d
		b2 += bv[i] * bv[i]
	}
	return math.Sqrt(d2 / b2)
}

func TestDivergenceStructure(t *testing.T) {
	dir := generate(t, "openvla-7b", false)
	base, vla, _ := Layout("openvla-7b", testScale)
	b, v := readSide(t, dir, base), readSide(t, dir, vla)
	rel := func(baseName, vlaName string) float64 { return relDelta(t, b[baseName], v[vlaName]) }
	llm := func(l int, m string) float64 {
		s := "layers." + strconv.Itoa(l) + "." + m
		return rel("model.llm_backbone.llm.model."+s, "language_model.model."+s)
	}
	early := llm(0, "mlp.up_proj.weight") + llm(1, "mlp.up_proj.weight")
	late := llm(30, "mlp.up_proj.weight") + llm(31, "mlp.up_proj.weight")
	if !(late > 2*early) {
		t.Errorf("late LLM layers should move more: early %.4g, late %.4g", early, late)
	}
	if a, f := llm(20, "self_attn.q_proj.weight"), llm(20, "mlp.gate_proj.weight"); !(a < f) {
		t.Errorf("LLM attention should move less than FFN: q %.4g, gate %.4g", a, f)
	}
	proj := rel("model.projector.projector.0.weight", "projector.fc1.weight")
	vision := rel("vision_backbone.featurizer.blocks.10.mlp.fc1.weight", "vision_backbone.featurizer.blocks.10.mlp.fc1.weight")
	mid := llm(16, "mlp.up_proj.weight")
	if !(proj > 1.5*late/2 && vision < mid/2 && vision > 0) {
		t.Errorf("want projector ≫ LLM ≫ vision > 0: projector %.4g, LLM late %.4g, middle %.4g, vision %.4g", proj, late/2, mid, vision)
	}
	// Heavy tails: per-row ΔW norms of a gate_proj have a few rows far above the median.
	name := "layers.25.mlp.gate_proj.weight"
	bv := decode(t, b["model.llm_backbone.llm.model."+name])
	vv := decode(t, v["language_model.model."+name])
	cols := int(v["language_model.model."+name].shape[1])
	var norms []float64
	for r := 0; r*cols < len(bv); r++ {
		var s float64
		for c := range cols {
			d := vv[r*cols+c] - bv[r*cols+c]
			s += d * d
		}
		norms = append(norms, math.Sqrt(s))
	}
	slices.Sort(norms)
	if med, top := norms[len(norms)/2], norms[len(norms)-1]; !(top > 4*med) {
		t.Errorf("row ΔW norms not heavy-tailed: median %.4g, max %.4g", med, top)
	}
	// The vocabulary (Llama-2's 32,000 scaled, plus Prismatic's <PAD> padded to
	// 64) is the same on both sides, and its last 64 rows, the pad rows, move
	// with the fine-tune like the others.
	for _, n := range [][2]string{
		{"model.llm_backbone.llm.model.embed_tokens.weight", "language_model.model.embed_tokens.weight"},
		{"model.llm_backbone.llm.lm_head.weight", "language_model.lm_head.weight"},
	} {
		bt, vt := b[n[0]], v[n[1]]
		if !slices.Equal(bt.shape, vt.shape) {
			t.Errorf("%s: base %v, VLA %v, want equal shapes", n[1], bt.shape, vt.shape)
			continue
		}
		rows, cols := int(vt.shape[0]), int(vt.shape[1])
		bv, vv := decode(t, bt), decode(t, vt)
		relRows := func(r0, r1 int) float64 {
			var d2, b2 float64
			for i := r0 * cols; i < r1*cols; i++ {
				d := vv[i] - bv[i]
				d2 += d * d
				b2 += bv[i] * bv[i]
			}
			return math.Sqrt(d2 / b2)
		}
		pad, rest := relRows(rows-64, rows), relRows(0, rows-64)
		if !(pad > rest/4 && pad < 4*rest) {
			t.Errorf("%s: pad rows' relative ΔW %.4g, the other rows' %.4g, want the same order", n[1], pad, rest)
		}
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"unknown preset", Options{Preset: "gpt5", Scale: 0.1, Out: t.TempDir()}, "unknown preset"},
		{"zero scale", Options{Preset: "pi05", Scale: 0, Out: t.TempDir()}, "(0, 1]"},
		{"scale above one", Options{Preset: "pi05", Scale: 1.5, Out: t.TempDir()}, "(0, 1]"},
		{"NaN scale", Options{Preset: "pi05", Scale: math.NaN(), Out: t.TempDir()}, "(0, 1]"},
		{"no output", Options{Preset: "pi05", Scale: 0.1}, "output"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Generate(context.Background(), c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Generate = %v, want an error containing %q", err, c.want)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Generate(ctx, Options{Preset: "tinyllama", Scale: 0.05, Out: t.TempDir()}); err == nil {
		t.Error("Generate with a cancelled context succeeded")
	}
}

func TestScaledShapesStayConsistent(t *testing.T) {
	// At odd scales the head structure must stay integral: q rows = heads·head_dim
	// and the hidden size agrees between producer and consumer of every stream.
	for _, scale := range []float64{0.01, 0.137, 0.5, 0.999} {
		for _, preset := range Presets() {
			base, vla, err := Layout(preset, scale)
			if err != nil {
				t.Fatalf("%s at %v: %v", preset, scale, err)
			}
			if params(vla) <= 0 || params(base) <= 0 {
				t.Errorf("%s at %v: empty", preset, scale)
			}
			have := shapesByName(t, vla)
			switch preset {
			case "tinyllama":
				q, k := have["model.layers.0.self_attn.q_proj.weight"].Shape, have["model.layers.0.self_attn.k_proj.weight"].Shape
				if q[0] != q[1] || q[0] != 8*k[0] || q[0]%32 != 0 {
					t.Errorf("tinyllama %v: q %v k %v", scale, q, k)
				}
			case "openvla-7b":
				fc1 := have["projector.fc1.weight"].Shape
				d := have["vision_backbone.featurizer.norm.weight"].Shape[0]
				s := have["vision_backbone.fused_featurizer.norm.weight"].Shape[0]
				h := have["language_model.model.norm.weight"].Shape[0]
				if fc1[1] != d+s || fc1[0] != 4*(d+s) || have["projector.fc3.weight"].Shape[0] != h || d%16 != 0 || s%16 != 0 {
					t.Errorf("openvla %v: fc1 %v dino %d siglip %d llm %d", scale, fc1, d, s, h)
				}
			case "pi05":
				q := have["paligemma_with_expert.gemma_expert.model.layers.0.self_attn.q_proj.weight"].Shape
				pq := have["paligemma_with_expert.paligemma.model.language_model.layers.0.self_attn.q_proj.weight"].Shape
				if q[0] != pq[0] || q[1]*2 != pq[1] {
					t.Errorf("pi05 %v: expert q %v, paligemma q %v: shared attention needs equal q rows", scale, q, pq)
				}
			}
		}
	}
}

func BenchmarkGenerateTinyllama(b *testing.B) {
	const scale = 0.25
	base, _, _ := Layout("tinyllama", scale)
	n, _ := safetensors.DataSize(base[0].Tensors)
	b.SetBytes(2 * n) // both sides
	dir := b.TempDir()
	for b.Loop() {
		if _, err := Generate(context.Background(), Options{Preset: "tinyllama", Scale: scale, Out: dir, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestShardNeverLeavesAShardEmpty(t *testing.T) {
	mk := func(sizes ...int64) []*spec {
		var out []*spec
		for i, n := range sizes {
			out = append(out, &spec{vla: "t" + strconv.Itoa(i), vlaShape: []int64{n}, vlaDType: tensor.U8})
		}
		return out
	}
	for _, c := range []struct {
		name  string
		sizes []int64
		want  []int
	}{
		{"balanced", []int64{5, 5, 5, 5, 5, 5}, []int{2, 2, 2}},
		{"huge first", []int64{1000, 1, 1, 1}, []int{1, 1, 2}},
		{"huge last", []int64{1, 1, 1, 1000}, []int{2, 1, 1}},
		{"exactly n", []int64{7, 1, 9}, []int{1, 1, 1}},
		{"all empty", []int64{0, 0, 0, 0}, []int{2, 1, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			files, names := shard(mk(c.sizes...), 3, "vla", true)
			var got []int
			for i, f := range files {
				got = append(got, len(f.specs))
				if names[i] != "model-0000"+strconv.Itoa(i+1)+"-of-00003.safetensors" {
					t.Errorf("shard %d named %s", i, names[i])
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("shard sizes %v, want %v", got, c.want)
			}
		})
	}
}
