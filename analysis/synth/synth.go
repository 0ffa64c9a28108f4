// Package synth generates synthetic base/VLA checkpoint pairs with the exact
// tensor names, shapes, dtypes and file layouts of real models (OpenVLA-7B and its
// Prismatic base, π0.5 and PaliGemma, TinyLlama), widths shrunk by a scale, and
// values whose divergence has structure: some layers, modules, heads and channels
// move more than others, the vision patch embedding not at all. They feed the
// tests, the benchmarks and the demo of `deltascope gen`.
package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/deltascope/deltascope/analysis/checkpoint"
	"github.com/deltascope/deltascope/analysis/checkpoint/safetensors"
)

// Options select what Generate writes.
type Options struct {
	Preset    string  // one of Presets()
	Scale     float64 // width multiplier in (0, 1]; 1 gives the real shapes
	Out       string  // output folder (created)
	ShapeOnly bool    // all-zero data left as sparse holes: real sizes, ~no disk
	Seed      uint64  // values differ per seed; the same options give the same bytes
}

// Pair lists the SRC specs (`[PREFIX=]PATH`, paths relative to Options.Out) to
// give `analyze` for each side; Generate also writes them to Out/pair.json.
type Pair struct {
	Base []string `json:"base"`
	VLA  []string `json:"vla"`
}

// File is one safetensors file of a side, its tensors in file order.
type File struct {
	Path    string // relative to Options.Out
	Prefix  string // SRC prefix the pair uses for it ("" for none)
	Tensors []safetensors.WriteTensor
}

// Presets lists the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presetBuilders))
	for n := range presetBuilders {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func buildModel(preset string, scale float64) (*model, error) {
	build, ok := presetBuilders[preset]
	if !ok {
		return nil, fmt.Errorf("unknown preset %q (known: %s)", preset, strings.Join(Presets(), ", "))
	}
	if math.IsNaN(scale) || scale <= 0 || scale > 1 {
		return nil, fmt.Errorf("scale %v must be in (0, 1]", scale)
	}
	m, err := build(scale)
	if err != nil {
		return nil, err
	}
	// The layout must be a valid checkpoint whatever the scale: check it now with
	// the writer's own rules rather than discover it half-way through writing.
	for _, side := range []struct {
		files []fileSpec
		vla   bool
	}{{m.baseFiles, false}, {m.vlaFiles, true}} {
		for i := range side.files {
			f := &side.files[i]
			if _, err := safetensors.DataSize(f.writeTensors(side.vla)); err != nil {
				return nil, fmt.Errorf("preset %s: %s: %v", preset, f.path, err)
			}
			if err := checkDTypes(f, side.vla); err != nil {
				return nil, fmt.Errorf("preset %s: %s: %v", preset, f.path, err)
			}
		}
	}
	return m, nil
}

// Layout returns the files of each side with their tensors, without any I/O.
func Layout(preset string, scale float64) (base, vla []File, err error) {
	m, err := buildModel(preset, scale)
	if err != nil {
		return nil, nil, err
	}
	return m.files(false), m.files(true), nil
}

func (m *model) files(vla bool) []File {
	side := m.baseFiles
	if vla {
		side = m.vlaFiles
	}
	out := make([]File, len(side))
	for i := range side {
		out[i] = File{Path: side[i].path, Prefix: side[i].prefix, Tensors: side[i].writeTensors(vla)}
	}
	return out
}

// addIndex adds a Hugging Face model.safetensors.index.json for a sharded side:
// weight_map in state-dict order, as huggingface_hub writes it, and
// metadata.total_size in bytes.
func (m *model) addIndex(path string, files []fileSpec, names []string, vla bool) error {
	where := map[*spec]string{}
	var total int64
	for i := range files {
		for _, s := range files[i].specs {
			where[s] = names[i]
		}
		n, err := safetensors.DataSize(files[i].writeTensors(vla))
		if err != nil {
			return fmt.Errorf("%s: %v", files[i].path, err)
		}
		total += n
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"metadata\": {\n    \"total_size\": %d\n  },\n  \"weight_map\": {", total)
	first := true
	for _, s := range m.specs {
		file, ok := where[s]
		if !ok {
			continue
		}
		name := s.base
		if vla {
			name = s.vla
		}
		key, _ := json.Marshal(name)
		val, _ := json.Marshal(file)
		if !first {
			b.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&b, "\n    %s: %s", key, val)
	}
	b.WriteString("\n  }\n}\n")
	m.extra[path] = b.Bytes()
	return nil
}

// ReadPair reads dir/pair.json, written by Generate, and returns its specs with
// paths made absolute under dir, ready for analysis from any working folder.
func ReadPair(dir string) (*Pair, error) {
	data, err := os.ReadFile(filepath.Join(dir, "pair.json"))
	if err != nil {
		return nil, err
	}
	var p Pair
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, "pair.json"), err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	under := func(path string) string { return filepath.Join(abs, path) }
	p.Base, p.VLA = checkpoint.MapSpecPaths(p.Base, under), checkpoint.MapSpecPaths(p.VLA, under)
	return &p, nil
}
