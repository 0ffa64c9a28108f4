package handlers

import (
	"fmt"
	"maps"
	"slices"

	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/store"
)

// storeRequest is what the store records of a request: the sources, rules
// and the options that shape the result.
func (req createAnalysisRequest) storeRequest() store.AnalysisRequest {
	return store.AnalysisRequest{Base: req.Base, VLA: req.VLA, Map: req.Map, Exact: req.Exact, Geometry: req.Geometry}
}

// maxGeometryValue bounds what a request may say of heads and head sizes:
// far above any real model, far below what would overflow anything.
const maxGeometryValue = 1 << 16

// checkGeometry refuses geometry an analysis could not use: heads ≥ 1, KV
// heads (default: heads) dividing them, a head size ≥ 0 (0: from the shapes).
func checkGeometry(geo map[string]arch.Geometry) error {
	for _, c := range slices.Sorted(maps.Keys(geo)) {
		g := geo[c]
		switch {
		case c == "":
			return fmt.Errorf(`geometry: an empty component name`)
		case g.Heads < 1 || g.Heads > maxGeometryValue:
			return fmt.Errorf("geometry %s: heads %d must be between 1 and %d", c, g.Heads, maxGeometryValue)
		case g.KVHeads < 0 || g.KVHeads > g.Heads || (g.KVHeads > 0 && g.Heads%g.KVHeads != 0):
			return fmt.Errorf("geometry %s: kv_heads %d must divide heads %d", c, g.KVHeads, g.Heads)
		case g.HeadDim < 0 || g.HeadDim > maxGeometryValue:
			return fmt.Errorf("geometry %s: head_dim %d must be between 0 (from the shapes) and %d", c, g.HeadDim, maxGeometryValue)
		}
	}
	return nil
}
