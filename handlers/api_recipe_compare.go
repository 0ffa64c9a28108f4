package handlers

import (
	"net/http"
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

// compareResponse is the two recipes and what differs between them.
type compareResponse struct {
	A compareSide `json:"a"`
	B compareSide `json:"b"`
	prune.Comparison
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
	out := &compareResponse{Comparison: prune.Compare(masks[0], masks[1], prune.PrunedUnits(masks[0], bases[0].res), prune.PrunedUnits(masks[1], bases[1].res))}
	for i, side := range []*compareSide{&out.A, &out.B} {
		p := masks[i].Params
		*side = compareSide{ID: recs[i].ID, Name: recs[i].Name, AnalysisID: recs[i].AnalysisID,
			Params: viewCount(prune.Count{Before: p.Before, After: p.After})}
	}
	return out, nil
}
