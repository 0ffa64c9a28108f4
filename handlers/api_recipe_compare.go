package handlers

import (
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
)

// compareSide is one of the two recipes compared.
type compareSide struct {
	ID         int64     `json:"id"`
	Name       string    `json:"name"`
	AnalysisID string    `json:"analysis_id"`
	Params     countView `json:"params"`
}

// componentDelta compares one component's parameters after pruning.
type componentDelta struct {
	Before int64 `json:"before"` // of recipe a's analysis
	AfterA int64 `json:"after_a"`
	AfterB int64 `json:"after_b"`
	Delta  int64 `json:"delta"` // after_b − after_a
}

// moduleOverlap compares the pruned units of one module family
// (component.kind), layer by layer and index by index.
type moduleOverlap struct {
	PrunedA int     `json:"pruned_a"`
	PrunedB int     `json:"pruned_b"`
	Both    int     `json:"both"`
	Either  int     `json:"either"`
	Jaccard float64 `json:"jaccard"` // both / either; 1 when neither prunes anything
}

type compareResponse struct {
	A           compareSide               `json:"a"`
	B           compareSide               `json:"b"`
	Delta       int64                     `json:"delta"` // b's params after − a's
	ByComponent map[string]componentDelta `json:"by_component"`
	Modules     map[string]moduleOverlap  `json:"modules"`
}

// apiRecipeCompare compares two saved recipes (of the same analysis or of two
// analyses of the same architecture): parameter deltas per component and the
// overlap of their pruned units per module.
func (s *Server) apiRecipeCompare(w http.ResponseWriter, r *http.Request) {
	var ids [2]int64
	for i, key := range []string{"a", "b"} {
		var err error
		if ids[i], err = strconv.ParseInt(r.URL.Query().Get(key), 10, 64); err != nil {
			badRequest(w, "compare: give two saved recipe ids, ?a=RID&b=RID")
			return
		}
	}
	out, err := s.compareRecipes(r, ids[0], ids[1])
	if err != nil {
		s.recipeAPIError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// compareRecipes resolves two saved recipes and compares them.
func (s *Server) compareRecipes(r *http.Request, aID, bID int64) (*compareResponse, error) {
	var recs [2]*store.Recipe
	var masks [2]*prune.Mask
	var bases [2]*resolveBase
	for i, rid := range []int64{aID, bID} {
		var err error
		if recs[i], err = s.db.GetRecipe(r.Context(), rid); err != nil {
			return nil, err
		}
		rc, err := recipeOf(recs[i])
		if err != nil {
			return nil, err
		}
		if masks[i], bases[i], err = s.resolve(r, recs[i].AnalysisID, rc); err != nil {
			return nil, err
		}
	}
	out := &compareResponse{ByComponent: map[string]componentDelta{}, Modules: map[string]moduleOverlap{}}
	for i, side := range []*compareSide{&out.A, &out.B} {
		p := masks[i].Params
		*side = compareSide{ID: recs[i].ID, Name: recs[i].Name, AnalysisID: recs[i].AnalysisID,
			Params: viewCount(prune.Count{Before: p.Before, After: p.After})}
	}
	out.Delta = out.B.Params.After - out.A.Params.After
	pa, pb := masks[0].Params.ByComponent, masks[1].Params.ByComponent
	for _, comp := range slices.Sorted(maps.Keys(pa)) {
		out.ByComponent[comp] = componentDelta{Before: pa[comp].Before, AfterA: pa[comp].After, AfterB: pb[comp].After, Delta: pb[comp].After - pa[comp].After}
	}
	for comp, c := range pb {
		if _, ok := pa[comp]; !ok {
			out.ByComponent[comp] = componentDelta{AfterB: c.After, Delta: c.After}
		}
	}
	ua, ub := pruneUnits(masks[0], bases[0]), pruneUnits(masks[1], bases[1])
	for _, fam := range unitFamilies(ua, ub) {
		out.Modules[fam.comp+"."+fam.kind] = overlap(ua[fam.comp][fam.kind], ub[fam.comp][fam.kind])
	}
	for _, m := range masks {
		for _, rule := range m.Rules {
			if _, ok := out.Modules[rule.Module]; !ok { // a rule that prunes nothing on either side
				out.Modules[rule.Module] = overlap(nil, nil)
			}
		}
	}
	return out, nil
}

type family struct{ comp, kind string }

func unitFamilies(us ...unitsPruned) []family {
	seen := map[family]bool{}
	for _, u := range us {
		for comp, kinds := range u {
			for kind := range kinds {
				seen[family{comp, kind}] = true
			}
		}
	}
	return slices.Collect(maps.Keys(seen))
}

// overlap counts the units both, either and each prune; the index lists are
// sorted, so one merge per layer.
func overlap(a, b map[int][]int32) moduleOverlap {
	var o moduleOverlap
	layers := map[int]bool{}
	for l, xs := range a {
		layers[l] = true
		o.PrunedA += len(xs)
	}
	for l, xs := range b {
		layers[l] = true
		o.PrunedB += len(xs)
	}
	for l := range layers {
		xs, ys := a[l], b[l]
		i, j := 0, 0
		for i < len(xs) && j < len(ys) {
			switch {
			case xs[i] == ys[j]:
				o.Both++
				i++
				j++
			case xs[i] < ys[j]:
				i++
			default:
				j++
			}
		}
	}
	o.Either = o.PrunedA + o.PrunedB - o.Both
	o.Jaccard = 1
	if o.Either > 0 {
		o.Jaccard = float64(o.Both) / float64(o.Either)
	}
	return o
}
