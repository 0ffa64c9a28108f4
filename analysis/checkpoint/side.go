package checkpoint

import (
	"fmt"
	"sort"

	"github.com/deltascope/deltascope/analysis/arch"
)

// Side is one model (the base, or the VLA) made of one or more sources: OpenVLA's
// Prismatic base, for example, is a torch pickle plus two timm vision files.
type Side struct {
	Sources []*Source
	Tensors []*Tensor // every tensor of every source, sorted by Name
}

// OpenSide opens every source and checks that no two of them provide the same
// tensor name (after prefixes). On error nothing stays open.
func OpenSide(specs []string, opt Options) (*Side, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("no source given")
	}
	side := &Side{}
	owner := map[string]*Source{}
	for _, spec := range specs {
		src, err := OpenSource(spec, opt)
		if err != nil {
			side.Close()
			return nil, err
		}
		side.Sources = append(side.Sources, src)
		for i := range src.Tensors {
			t := &src.Tensors[i]
			if other, dup := owner[t.Name]; dup {
				side.Close()
				return nil, tensorErrorf(src.Path, t.Name, "also provided by %s; give one of them a PREFIX=", other.Path)
			}
			owner[t.Name] = src
			side.Tensors = append(side.Tensors, t)
		}
	}
	sort.Slice(side.Tensors, func(i, j int) bool { return side.Tensors[i].Name < side.Tensors[j].Name })
	return side, nil
}

// Close closes every source.
func (s *Side) Close() error {
	var first error
	for _, src := range s.Sources {
		if err := src.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Params is the number of elements across the side, a tied tensor (one set of
// bytes saved under several names) counted once.
func (s *Side) Params() int64 {
	var n int64
	for _, t := range s.Unique() {
		n += t.Elements()
	}
	return n
}

// Bytes is the number of tensor bytes across the side, shared bytes once.
func (s *Side) Bytes() int64 {
	var n int64
	for _, t := range s.Unique() {
		n += t.Size
	}
	return n
}

// Unique lists the side's tensors in order without repeats of the same bytes:
// torch.save writes a tied weight (lm_head tied to embed_tokens) once, with
// every name pointing at the one storage, and a model has it once.
func (s *Side) Unique() []*Tensor {
	type at struct {
		file         string
		offset, size int64
	}
	seen := make(map[at]bool, len(s.Tensors))
	out := make([]*Tensor, 0, len(s.Tensors))
	for _, t := range s.Tensors {
		k := at{t.File, t.Offset, t.Size}
		if t.Size > 0 && seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, t)
	}
	return out
}

// Named lists the side's tensors by name and shape, in the side's order: what
// alignment, classification and recipe accounting need of a checkpoint,
// without its files.
func (s *Side) Named() []arch.Named {
	return Named(s.Tensors)
}

// Named lists tensors by name and shape, in their order.
func Named(ts []*Tensor) []arch.Named {
	out := make([]arch.Named, len(ts))
	for i, t := range ts {
		out[i] = arch.Named{Name: t.Name, Shape: t.Shape}
	}
	return out
}
