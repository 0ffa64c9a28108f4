package prune

import (
	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/analysis/checkpoint"
)

// VLATensors lists a VLA's tensors for Options.VLATensors. A tensor stored
// once under two names — tied weights sharing the same bytes, as a torch
// pickle keeps an lm_head tied to embed_tokens — is listed once, under its
// first name, so that the accounting counts its parameters once.
func VLATensors(vla *checkpoint.Side) []arch.Named {
	return checkpoint.Named(vla.Unique())
}

// account counts parameters before and after the mask, in all and per component
// and layer. A pruned row of an [R, C] matrix removes C parameters, a pruned
// column R, and a cell both remove once: R·C − (R−r)(C−c).
func account(res *analysis.Result, m *Mask, opt Options) Params {
	p := Params{ByComponent: map[string]Count{}, ByLayer: map[string][]Count{}}
	add := func(comp string, layer int, before, removed int64) {
		c := p.ByComponent[comp]
		c.Before += before
		c.After += before - removed
		p.ByComponent[comp] = c
		if layer < 0 {
			return
		}
		ls := p.ByLayer[comp]
		for len(ls) <= layer {
			ls = append(ls, Count{})
		}
		ls[layer].Before += before
		ls[layer].After += before - removed
		p.ByLayer[comp] = ls
	}
	removed := func(name string, shape []int64) int64 {
		t := m.Tensor(name)
		if t == nil {
			return 0
		}
		return elements(shape) - elements(t.KeptShape())
	}
	var known, cut int64
	if len(opt.VLATensors) > 0 {
		for _, t := range opt.VLATensors {
			c := arch.Classify(t.Name, t.Shape)
			n, r := elements(t.Shape), removed(t.Name, t.Shape)
			add(c.Component, c.Layer, n, r)
			known += n
			cut += r
		}
		p.Before, p.After = known, known-cut
		return p
	}
	for i := range res.Tensors {
		t := &res.Tensors[i]
		n, r := elements(t.ShapeVLA), removed(t.VLA, t.ShapeVLA)
		add(t.Component, t.Layer, n, r)
		known += n
		cut += r
	}
	for _, mm := range res.Mismatched {
		if mm.Compared { // also in Tensors, counted above
			continue
		}
		c := arch.Classify(mm.VLA, mm.ShapeVLA)
		n := elements(mm.ShapeVLA)
		add(c.Component, c.Layer, n, 0)
		known += n
	}
	if rest := res.VLAParams - known; rest > 0 {
		add(VLAOnlyComponent, -1, rest, 0)
		known += rest
	}
	p.Before, p.After = known, known-cut
	return p
}

func elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}
