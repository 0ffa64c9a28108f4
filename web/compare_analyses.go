package web

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/compare"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// CompareState is everything the comparison's URL says.
type CompareState struct {
	A, B      string
	Component string
	View      viz.View
	// TopPercent is the share of most-changed units whose overlap is
	// measured, in percent (default 10).
	TopPercent float64
}

// ParseCompareState reads the state from a query, defaults for anything
// missing or out of range.
func ParseCompareState(q url.Values) CompareState {
	s := CompareState{A: q.Get("a"), B: q.Get("b"), Component: q.Get("component"), View: viz.ParseView(q), TopPercent: compare.DefaultTopFraction * 100}
	if k, err := strconv.ParseFloat(q.Get("k"), 64); err == nil && k > 0 && k <= 100 {
		s.TopPercent = k
	}
	return s
}

// Query is the state as a URL query.
func (s CompareState) Query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"a": s.A, "b": s.B, "component": s.Component} {
		if v != "" {
			q.Set(k, v)
		}
	}
	s.View.Set(q)
	q.Set("k", strconv.FormatFloat(s.TopPercent, 'g', -1, 64))
	return q
}

// CompareInput is what the handler reads for two done analyses.
type CompareInput struct {
	A, B   *store.Analysis
	TA, TB []analysis.TensorStats
	UA, UB []analysis.UnitScores
}

// ComparePage is the view model of /compare.
type ComparePage struct {
	State      CompareState
	Choices    []Choice // done analyses to pick from
	A, B       *store.Analysis
	Components []string // components both analyses have
	Charts     []viz.Chart
	Modules    Table
	// Note explains why nothing is compared yet.
	Note string
	// OriginsA and OriginsB say where each analysis's sides came from (the
	// handler sets them).
	OriginsA, OriginsB *Origins
}

// AnalysisChoices lists done analyses for a picker, newest first.
func AnalysisChoices(list []store.Analysis) []Choice {
	var out []Choice
	for i := range list {
		a := &list[i]
		if a.Status == store.StatusDone {
			// The name first: three runs of one VLA differ by name, not path.
			out = append(out, Choice{a.ID, DisplayName(a) + " · " + a.ID})
		}
	}
	return out
}

// BuildCompare lays out the comparison; in.A or in.B nil shows the picker
// with note.
func BuildCompare(in CompareInput, st CompareState, choices []Choice, note string) ComparePage {
	p := ComparePage{State: st, Choices: choices, A: in.A, B: in.B, Note: note}
	if in.A == nil || in.B == nil {
		return p
	}
	ca, cb := viz.Components(in.TA), viz.Components(in.TB)
	for _, c := range ca {
		if slices.Contains(cb, c) {
			p.Components = append(p.Components, c)
		}
	}
	if len(p.Components) == 0 {
		p.Note = "These analyses share no component: there is nothing to align."
		return p
	}
	if !slices.Contains(p.Components, st.Component) {
		p.State.Component = p.Components[0]
	}
	linkQ := with(p.State.Query(), "a", "", "b", "", "k", "", "component", "").Encode()
	a, b, d := viz.CompareHeatmaps(in.TA, in.TB, p.State.Component, st.View,
		TensorURL(in.A.ID, "", nil), TensorURL(in.B.ID, "", nil), linkQ)
	a.Title, b.Title = p.State.Component+" · a = "+in.A.ID, p.State.Component+" · b = "+in.B.ID
	p.Charts = []viz.Chart{a, b, d}

	self := withQuery(ComparePath, p.State.Query())
	p.Modules = Table{ID: "modules", Title: "Unit scores per module: rank correlation and top-k overlap", Base: self,
		Empty:   "No module has unit scores in both analyses (units are FFN channels and attention heads of components whose geometry is known).",
		Columns: []string{"component", "kind", "layers", "units", "spearman", "k", "top_k_common", "top_k_jaccard", "only_a", "only_b"}}
	for _, m := range compare.Modules(in.UA, in.UB, st.TopPercent/100) {
		p.Modules.Rows = append(p.Modules.Rows, []Cell{Text(m.Component), Text(m.Kind), Int(int64(m.Layers)), Int(int64(m.Units)),
			numOrDash(m.Spearman), Int(int64(m.K)), Int(int64(m.Common)), numOrDash(m.Jaccard), Int(int64(m.OnlyA)), Int(int64(m.OnlyB))})
	}
	return p
}

func numOrDash(x float64) Cell {
	if math.IsNaN(x) {
		return Cell{Text: "–", Num: true}
	}
	return Cell{Text: strconv.FormatFloat(x, 'f', 3, 64), Value: x, Num: true}
}

// TopKCaption explains the modules table.
func (p ComparePage) TopKCaption() string {
	return fmt.Sprintf("Units of all layers of a module ranked together, paired by layer and index. ρ: Spearman's rank correlation of the two analyses' scores (ties get average ranks). Top-k: the %g %% of units with the highest score in each analysis; common: how many are in both; Jaccard: common / union.", p.State.TopPercent)
}
