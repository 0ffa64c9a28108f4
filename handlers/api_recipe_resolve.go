package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/web/viz"
)

// countView is a parameter count with the fraction pruned.
type countView struct {
	Before   int64   `json:"before"`
	After    int64   `json:"after"`
	Fraction float64 `json:"fraction"` // (before − after) / before
}

func viewCount(c prune.Count) countView {
	v := countView{Before: c.Before, After: c.After}
	if c.Before > 0 {
		v.Fraction = float64(c.Before-c.After) / float64(c.Before)
	}
	return v
}

// resolveResponse is what the composer draws after each change.
type resolveResponse struct {
	Recipe      prune.Recipe             `json:"recipe"`
	Params      countView                `json:"params"`
	ByComponent map[string]countView     `json:"by_component"`
	ByLayer     map[string][]countView   `json:"by_layer"`
	Rules       []prune.RuleStats        `json:"rules"`
	Warnings    []string                 `json:"warnings"`
	UnitsPruned prune.UnitsPruned        `json:"units_pruned,omitempty"`
	Widths      map[string]*prune.Widths `json:"widths"`
	// Charts are the composer's chart options (only with ?charts=1).
	Charts *viz.ComposeSpecs `json:"charts,omitempty"`
}

func newResolveResponse(m *prune.Mask, b *resolveBase, withUnits bool) resolveResponse {
	out := resolveResponse{Recipe: m.Recipe, Params: viewCount(prune.Count{Before: m.Params.Before, After: m.Params.After}),
		ByComponent: map[string]countView{}, ByLayer: map[string][]countView{}, Rules: m.Rules, Warnings: m.Warnings, Widths: m.Widths}
	for comp, c := range m.Params.ByComponent {
		out.ByComponent[comp] = viewCount(c)
	}
	for comp, ls := range m.Params.ByLayer {
		vs := make([]countView, len(ls))
		for i, c := range ls {
			vs[i] = viewCount(c)
		}
		out.ByLayer[comp] = vs
	}
	if b.vlaErr != nil {
		out.Warnings = append(slices.Clip(out.Warnings), "the VLA files cannot be opened now, so tensors only the VLA has are counted under \"vla_only\" and checkpoint exports will fail: "+b.vlaErr.Error())
	}
	if withUnits {
		out.UnitsPruned = prune.PrunedUnits(m, b.res)
	}
	return out
}

// presetBody is the other form a recipe body may take: {"preset": "NAME"}.
type presetBody struct {
	Preset string `json:"preset"`
}

// readRecipeBody reads a recipe from a request: a recipe JSON object, or
// {"preset": NAME}, or (from an HTML form) the field "recipe" holding either.
// Errors are the user's: the message says what is wrong.
func (s *Server) readRecipeBody(w http.ResponseWriter, r *http.Request) (prune.Recipe, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxJSONBody)
	var data []byte
	if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data") {
		if err := r.ParseMultipartForm(s.cfg.MaxJSONBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return prune.Recipe{}, fmt.Errorf("reading the form: %w", err)
		}
		data = []byte(r.PostFormValue("recipe"))
	} else {
		var err error
		if data, err = io.ReadAll(r.Body); err != nil {
			return prune.Recipe{}, fmt.Errorf("reading the body: %w", err)
		}
	}
	return parseRecipe(data)
}

func parseRecipe(data []byte) (prune.Recipe, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return prune.Recipe{}, fmt.Errorf("recipe: empty; send a recipe JSON object or {\"preset\": NAME}")
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return prune.Recipe{}, fmt.Errorf("recipe: not a JSON object: %v", err)
	}
	if _, ok := keys["preset"]; ok && len(keys) == 1 {
		var p presetBody
		if err := json.Unmarshal(data, &p); err != nil {
			return prune.Recipe{}, fmt.Errorf("preset: %v", err)
		}
		return prune.Preset(p.Preset)
	}
	return prune.ReadRecipe(bytes.NewReader(data))
}

// recipeBodyError answers a body readRecipeBody refused: 413 when too large,
// 400 otherwise.
func recipeBodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{fmt.Sprintf("request body larger than %d bytes", tooBig.Limit)})
		return
	}
	badRequest(w, err.Error())
}

// resolve resolves a recipe against a cached analysis, stamped with where it
// was composed. Recipe errors (a rule the analysis cannot satisfy) are
// returned as *recipeError.
func (s *Server) resolve(r *http.Request, id string, rc prune.Recipe) (*prune.Mask, *resolveBase, error) {
	b, err := s.recipeState().cache.get(r.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	rc.Analysis, rc.BaseFingerprint, rc.VLAFingerprint = id, b.analysis.BaseFingerprint, b.analysis.VLAFingerprint
	rc.EngineVersion = b.analysis.EngineVersion
	m, err := prune.ResolveWith(b.res, rc, prune.Options{VLATensors: b.vlaTensors})
	if err != nil {
		return nil, nil, &recipeError{err}
	}
	return m, b, nil
}

// recipeError is a recipe the analysis refuses: 400 with the message.
type recipeError struct{ err error }

func (e *recipeError) Error() string { return e.err.Error() }
func (e *recipeError) Unwrap() error { return e.err }

// recipeAPIError is apiError that also knows recipe errors.
func (s *Server) recipeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	var re *recipeError
	if errors.As(err, &re) {
		badRequest(w, "recipe: "+re.Error())
		return
	}
	s.apiError(w, r, err)
}

// apiResolve resolves a recipe posted by the composer: the parameter counts,
// what each rule did, the warnings, (unless units=0) the pruned units and
// (with charts=1) the composer's charts, mask=MODULE choosing the unit map.
func (s *Server) apiResolve(w http.ResponseWriter, r *http.Request) {
	rc, err := s.readRecipeBody(w, r)
	if err != nil {
		recipeBodyError(w, err)
		return
	}
	m, b, err := s.resolve(r, chi.URLParam(r, "id"), rc)
	if err != nil {
		s.recipeAPIError(w, r, err)
		return
	}
	q := r.URL.Query()
	out := newResolveResponse(m, b, q.Get("units") != "0")
	if q.Get("charts") == "1" {
		units := out.UnitsPruned
		if units == nil {
			units = prune.PrunedUnits(m, b.res)
		}
		c := viz.ComposeCharts(m.Params, units, prune.PrunableModules(b.res), q.Get("mask"))
		out.Charts = &c
	}
	writeJSON(w, http.StatusOK, out)
}

// presetView is one built-in recipe.
type presetView struct {
	Name   string       `json:"name"`
	Recipe prune.Recipe `json:"recipe"`
}

// apiPresets lists the built-in recipes (the paper's Table 12) and the module
// families a rule may name.
func (s *Server) apiPresets(w http.ResponseWriter, r *http.Request) {
	out := []presetView{}
	for _, name := range prune.Presets() {
		rc, err := prune.Preset(name)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		out = append(out, presetView{Name: name, Recipe: rc})
	}
	writeJSON(w, http.StatusOK, map[string]any{"presets": out, "modules": prune.Modules()})
}
