package synth

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
	"github.com/deltascope/deltascope/analysis/tensor"
)

// initKind picks how a tensor's base values are drawn.
type initKind uint8

const (
	initMatrix     initKind = iota // N(0, 1/fan_in): linear weights, embeddings
	initNorm                       // ≈ 1: LayerNorm / RMSNorm scales
	initBias                       // small, around 0
	initToken                      // std 0.02: cls/reg tokens, position embeddings, pooling latents
	initLayerScale                 // ≈ 0.1: DINOv2 LayerScale
)

// unitAxis groups the rows (or columns) of a tensor into units — an attention
// head, an FFN channel, a vocabulary row — that share one divergence scale. Units
// of different tensors with the same group name share scales, so that FFN channel
// j moves in gate row j, up row j and down column j together, as a real fine-tune
// concentrated on a channel would, and the unit scores of the paper see it.
type unitAxis struct {
	group string // "" for none
	size  int64  // rows (columns) per unit: head_dim for heads, 1 for channels
	mod   int64  // index taken modulo mod first (fused q;k;v blocks), 0 for none
}

// spec is one logical tensor of a synthetic pair, with its name on each side.
type spec struct {
	key       string // canonical name: seeds derive from it, so both sides share base values
	base, vla string // stored names; "" when the side lacks the tensor
	baseGroup string // which base file holds it (see model.baseFiles)
	baseShape []int64
	vlaShape  []int64
	baseDType tensor.DType
	vlaDType  tensor.DType

	// baseRows is how many leading rows of the VLA tensor are "base + ΔW". Rows at
	// or past it (added vocabulary) and whole VLA-only tensors are fresh random.
	baseRows int64
	init     initKind
	fanIn    int64
	frozen   bool    // ΔW exactly 0 (the vision patch embedding)
	deltaRel float64 // ΔW std relative to the base std (or to 0.05 for norm-like tensors)
	rowUnit  unitAxis
	colUnit  unitAxis
}

// rowsCols views a tensor as a matrix: rows = dim 0, the rest flattened; a
// vector or scalar is one row.
func rowsCols(shape []int64) (rows, cols int64) {
	if len(shape) <= 1 {
		n := int64(1)
		if len(shape) == 1 {
			n = shape[0]
		}
		return 1, n
	}
	cols = 1
	for _, d := range shape[1:] {
		cols *= d
	}
	return shape[0], cols
}

// fileSpec is one safetensors file of a side: where it goes and which specs it
// holds, in the order their bytes are laid out.
type fileSpec struct {
	path   string // relative to Options.Out
	prefix string // SRC prefix for pair.json ("" for none)
	specs  []*spec
}

// model is a whole synthetic pair: every logical tensor, how each side is split
// into files, and the side files beside them (index, config).
type model struct {
	preset    string
	specs     []*spec // state-dict order
	baseFiles []fileSpec
	vlaFiles  []fileSpec
	baseSpecs []string // SRC specs for pair.json
	vlaSpecs  []string
	extra     map[string][]byte // path → contents: config.json, index files
}

// builder collects specs in state-dict order.
type builder struct {
	specs []*spec
}

func (b *builder) add(s *spec) *spec {
	if s.vlaShape == nil {
		s.vlaShape = s.baseShape
	}
	if s.baseShape == nil {
		s.baseShape = s.vlaShape
	}
	if s.key == "" {
		s.key = cmp.Or(s.vla, s.base)
	}
	if s.fanIn == 0 {
		_, s.fanIn = rowsCols(s.vlaShape)
	}
	if s.base != "" && s.baseRows == 0 {
		s.baseRows, _ = rowsCols(s.baseShape)
	}
	b.specs = append(b.specs, s)
	return s
}

// sortForFile orders tensors as the reference safetensors writer does: wider
// dtypes first, then by name.
func sortForFile(specs []*spec, name func(*spec) string, dtype func(*spec) tensor.DType) {
	slices.SortStableFunc(specs, func(a, b *spec) int {
		if c := cmp.Compare(dtype(b).Bits(), dtype(a).Bits()); c != 0 {
			return c
		}
		return cmp.Compare(name(a), name(b))
	})
}

func baseName(s *spec) string        { return s.base }
func vlaName(s *spec) string         { return s.vla }
func baseDType(s *spec) tensor.DType { return s.baseDType }
func vlaDType(s *spec) tensor.DType  { return s.vlaDType }

// writeTensors lists a file's tensors as the safetensors writer wants them.
func (f *fileSpec) writeTensors(vla bool) []safetensors.WriteTensor {
	out := make([]safetensors.WriteTensor, len(f.specs))
	for i, s := range f.specs {
		if vla {
			out[i] = safetensors.WriteTensor{Name: s.vla, DType: s.vlaDType, Shape: s.vlaShape}
		} else {
			out[i] = safetensors.WriteTensor{Name: s.base, DType: s.baseDType, Shape: s.baseShape}
		}
	}
	return out
}

// shard splits specs (state-dict order) into n files of roughly equal bytes, as
// Hugging Face's sharding does, never leaving a shard empty. Each shard is then
// sorted like the reference writer's output.
func shard(specs []*spec, n int, dir string, vla bool) ([]fileSpec, []string) {
	size := func(s *spec) int64 {
		shape, dt := s.baseShape, s.baseDType
		if vla {
			shape, dt = s.vlaShape, s.vlaDType
		}
		b, _ := safetensors.WriteTensorBytes(dt, shape)
		return b
	}
	var total int64
	for _, s := range specs {
		total += size(s)
	}
	if n > len(specs) {
		n = len(specs)
	}
	groups := make([][]*spec, n)
	var done int64
	prev := 0
	for i, s := range specs {
		k := prev
		if i > 0 {
			if total > 0 { // the shard where this tensor starts, in order, none skipped
				k = min(max(int(float64(done)/float64(total)*float64(n)), prev), prev+1, n-1)
			}
			if len(specs)-i <= n-1-prev {
				k = prev + 1 // exactly one tensor left for each still-empty shard
			}
		}
		groups[k] = append(groups[k], s)
		prev = k
		done += size(s)
	}
	files := make([]fileSpec, n)
	names := make([]string, n)
	for i, g := range groups {
		names[i] = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, n)
		files[i] = fileSpec{path: dir + "/" + names[i], specs: g}
		if vla {
			sortForFile(files[i].specs, vlaName, vlaDType)
		} else {
			sortForFile(files[i].specs, baseName, baseDType)
		}
	}
	return files, names
}

// Scaled widths. Each keeps the real value at scale 1 and a multiple that keeps
// shapes consistent below it: head dims even, FFN widths and vocabularies
// multiples of 8.
func scaled(real int64, scale float64, multiple int64) int64 {
	n := int64(math.Round(float64(real)*scale/float64(multiple))) * multiple
	return max(n, multiple)
}
