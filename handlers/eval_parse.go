package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// parseSuccessRate reads a success rate as people write it: a fraction
// (0.933), a percentage with its sign (93.3%), or a bare number above 1,
// which can only be a percentage (93.3). Papers and spreadsheets use all three.
func parseSuccessRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	pct := strings.HasSuffix(s, "%")
	num := strings.TrimSpace(strings.TrimSuffix(s, "%"))
	x, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, fmt.Errorf("success_rate %q: not a number", s)
	}
	if pct || x > 1 {
		// Shifting the decimal point in the text rounds once, as 0.933 is
		// read; dividing by 100 would store 93.3 % as 0.9329999999999999.
		if y, err := strconv.ParseFloat(num+"e-2", 64); err == nil && !strings.ContainsAny(num, "eE") {
			x = y
		} else {
			x /= 100
		}
	}
	if x < 0 || x > 1 {
		return 0, fmt.Errorf("success_rate %q: must be a fraction from 0 to 1 or a percentage from 0 to 100", s)
	}
	return x, nil
}

// jsonText accepts a JSON string or number as its text ("" for null or
// absent), so scripts may send 0.9 or "90%".
func jsonText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("want a string or a number, got %s", raw)
	}
	return n.String(), nil
}

// recipeRefs resolves how results name their recipe: an id or a name of one
// of the analysis's recipes, or "baseline" / nothing for the unpruned model.
type recipeRefs struct {
	byID   map[int64]bool
	byName map[string][]int64
}

func (s *Server) recipeRefs(ctx context.Context, analysisID string) (*recipeRefs, error) {
	rs, err := s.db.ListRecipes(ctx, analysisID)
	if err != nil {
		return nil, err
	}
	refs := &recipeRefs{byID: map[int64]bool{}, byName: map[string][]int64{}}
	for _, r := range rs {
		refs.byID[r.ID] = true
		refs.byName[r.Name] = append(refs.byName[r.Name], r.ID)
	}
	return refs, nil
}

// resolve returns the recipe id (nil: the unpruned model). A name wins over
// an id-looking string only when no recipe has that id.
func (refs *recipeRefs) resolve(ref string) (*int64, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" || strings.EqualFold(ref, web.BaselineChoice) {
		return nil, nil
	}
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && refs.byID[id] {
		return &id, nil
	}
	switch ids := refs.byName[ref]; len(ids) {
	case 1:
		return &ids[0], nil
	case 0:
		return nil, fmt.Errorf("recipe %q: this analysis has no recipe with that name or id", ref)
	default:
		return nil, fmt.Errorf("recipe %q: %d recipes have that name; use the id", ref, len(ids))
	}
}

// evalBody is one result sent as JSON.
type evalBody struct {
	Recipe      json.RawMessage `json:"recipe"` // analysis endpoint only
	Benchmark   string          `json:"benchmark"`
	SuccessRate json.RawMessage `json:"success_rate"`
	Episodes    int64           `json:"episodes"`
	Notes       string          `json:"notes"`
}

func (b evalBody) toNew() (store.NewEval, error) {
	text, err := jsonText(b.SuccessRate)
	if err != nil {
		return store.NewEval{}, fmt.Errorf("success_rate: %v", err)
	}
	if text == "" {
		return store.NewEval{}, fmt.Errorf("success_rate: missing")
	}
	rate, err := parseSuccessRate(text)
	if err != nil {
		return store.NewEval{}, err
	}
	e := store.NewEval{Benchmark: b.Benchmark, SuccessRate: rate, Episodes: b.Episodes, Notes: b.Notes}
	return e, store.CheckEval(&e)
}
