package web

import (
	"cmp"
	"math"
	"net/url"
	"slices"
	"strings"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// Tabs of the overview page.
const (
	TabOverview  = "overview"
	TabUnits     = "units"
	TabUnmatched = "unmatched"
)

// Tab is one tab of the overview with its link.
type Tab struct {
	ID, Label, Href string
	Current         bool
}

// OverviewState is everything the overview's URL says: which tab, which
// component, how heatmaps look, which tensor is selected.
type OverviewState struct {
	Tab       string
	Component string // "" = every component (overview tab)
	View      viz.View
	Selected  string // a tensor's VLA name
}

// ParseOverviewState reads the state from a query, defaults for anything missing.
func ParseOverviewState(q url.Values) OverviewState {
	s := OverviewState{Tab: TabOverview, Component: q.Get("component"), View: viz.ParseView(q), Selected: q.Get("sel")}
	switch t := q.Get("tab"); t {
	case TabUnits, TabUnmatched:
		s.Tab = t
	}
	return s
}

// Query is the state as a URL query (the inverse of ParseOverviewState).
func (s OverviewState) Query() url.Values {
	q := url.Values{}
	q.Set("tab", s.Tab)
	if s.Component != "" {
		q.Set("component", s.Component)
	}
	s.View.Set(q)
	if s.Selected != "" {
		q.Set("sel", s.Selected)
	}
	return q
}

// Overview is the view model of a done analysis's page.
type Overview struct {
	Analysis   *store.Analysis
	State      OverviewState
	Tabs       []Tab
	Components []string // components present, page order
	UnitComps  []string // components with unit scores (units tab)
	// Counts of the alignment.
	Aligned, BaseOnly, VLAOnly, Mismatched, Ambiguous int
	// UnmatchedReasons say, per component, what likely left tensors
	// unmatched (analysis.ExplainUnmatched), for the banner.
	UnmatchedReasons []string

	Summary  Table // per component
	Most     Table // most changed tensors
	Least    Table // least changed tensors
	Selected *Table
	Heatmaps []viz.Chart
	// HeatTables hold each heatmap's cells as a table of links: the way to a
	// cell from the keyboard or a screen reader (canvas cells have no focus).
	HeatTables []Table
	UnitCharts []viz.Chart
	Unmatched  []Table // base-only, VLA-only, mismatched, ambiguous
	// AllTensors is downloadable only: a 7B model has a thousand rows, built
	// by Tables when a download asks for it.
	AllTensors Table
	// Comments is the thread of the selected cell (sel in the URL) or of the
	// analysis; nil leaves reviewing off the page (the handler sets it).
	Comments *CommentThread
	// Origins says where each side came from (the handler sets it; nil
	// leaves it off the page).
	Origins *Origins
	tensors []analysis.TensorStats
	link    func(string) string
}

// OverviewInput is what the handler reads from the store.
type OverviewInput struct {
	Analysis  *store.Analysis
	Tensors   []analysis.TensorStats // without arrays
	Alignment *analysis.Result       // lists only
	Units     []analysis.UnitScores  // only read for the units tab
}

// BuildOverview lays out the page for a state. self is the page URL the
// download links extend.
func BuildOverview(in OverviewInput, st OverviewState) Overview {
	id := in.Analysis.ID
	o := Overview{Analysis: in.Analysis, State: st, Components: viz.Components(in.Tensors)}
	if st.Component != "" && !slices.Contains(o.Components, st.Component) && st.Tab != TabUnits {
		o.State.Component = ""
	}
	self := AnalysisViewURL(id, o.State.Query())
	for _, t := range []Tab{{ID: TabOverview, Label: "Overview"}, {ID: TabUnits, Label: "Units"}, {ID: TabUnmatched, Label: "Unmatched & mismatched"}} {
		t.Href = AnalysisViewURL(id, with(o.State.Query(), "tab", t.ID))
		t.Current = t.ID == o.State.Tab
		o.Tabs = append(o.Tabs, t)
	}
	o.Tabs = append(o.Tabs, Tab{ID: "spectrum", Label: "Spectrum", Href: SpectrumURL(id, nil)})
	al := in.Alignment
	if al == nil {
		al = &analysis.Result{}
	}
	o.Aligned, o.BaseOnly, o.VLAOnly, o.Mismatched, o.Ambiguous = len(in.Tensors), len(al.BaseOnly), len(al.VLAOnly), len(al.Mismatched), len(al.Ambiguous)
	o.UnmatchedReasons = unmatchedReasons(in, al)
	link := func(name string) string { return TensorURL(id, name, with(o.State.Query(), "sel", name)) }

	o.AllTensors = Table{ID: "tensors", Title: "All tensors", Base: self}
	o.tensors, o.link = in.Tensors, link
	switch o.State.Tab {
	case TabOverview:
		o.Summary = componentTable(in.Tensors, self)
		o.Most, o.Least = extremeTables(in.Tensors, 8, o.State.View.Weights, link, self)
		maps := viz.HeatmapComponents(in.Tensors)
		if o.State.Component != "" {
			maps = []string{o.State.Component}
		}
		for _, c := range maps {
			o.Heatmaps = append(o.Heatmaps, viz.ModuleHeatmap(in.Tensors, c, o.State.View, TensorURL(id, "", nil), with(o.State.Query(), "sel", "").Encode()))
			o.HeatTables = append(o.HeatTables, cellTable(in.Tensors, c, o.State.View, link, self))
		}
		if st.Selected != "" {
			for i := range in.Tensors {
				if in.Tensors[i].VLA == st.Selected {
					t := tensorsTable(in.Tensors[i:i+1], link, self)
					t.ID, t.Title = "selected", "Selected tensor"
					o.Selected = &t
				}
			}
		}
	case TabUnits:
		o.UnitComps = UnitComponents(in.Units)
		o.UnitCharts = unitCharts(in.Units, o.State)
	case TabUnmatched:
		o.Unmatched = unmatchedTables(al, self)
	}
	return o
}

// UnitComponents lists the components that have unit scores, page order.
func UnitComponents(us []analysis.UnitScores) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range us {
		if !seen[u.Component] {
			seen[u.Component] = true
			out = append(out, u.Component)
		}
	}
	return out
}

func unitCharts(us []analysis.UnitScores, st OverviewState) []viz.Chart {
	var out []viz.Chart
	for _, comp := range UnitComponents(us) {
		if st.Component != "" && comp != st.Component {
			continue
		}
		for _, kind := range []string{analysis.UnitFFN, analysis.UnitHead} {
			has := slices.ContainsFunc(us, func(u analysis.UnitScores) bool { return u.Component == comp && u.Kind == kind })
			if has {
				out = append(out, viz.UnitHeatmap(us, comp, kind, st.View, viz.MaxUnitBins))
			}
		}
	}
	return out
}

// Tables returns every table of the page by its download id, for ?format=.
func (o Overview) Tables() []Table {
	all := tensorsTable(o.tensors, o.link, o.AllTensors.Base)
	ts := append([]Table{o.Summary, o.Most, o.Least, all}, o.Unmatched...)
	ts = append(ts, o.HeatTables...)
	if o.Selected != nil {
		ts = append(ts, *o.Selected)
	}
	return ts
}

// cellTable lists the cells of one component's heatmap, layer by layer, each
// linking to its tensor, with the value the heatmap colours by.
func cellTable(ts []analysis.TensorStats, component string, v viz.View, link func(string) string, self string) Table {
	m := v.Metric
	t := Table{ID: "cells-" + component, Title: component + " heatmap cells", Base: self,
		Columns: []string{"layer", "kind", "tensor", viz.MetricLabel(m)}}
	var cells []*analysis.TensorStats
	for i := range ts {
		if viz.InHeatmap(&ts[i], component, v) {
			cells = append(cells, &ts[i])
		}
	}
	slices.SortStableFunc(cells, func(a, b *analysis.TensorStats) int {
		if a.Layer != b.Layer {
			return a.Layer - b.Layer
		}
		return strings.Compare(a.Kind+a.VLA, b.Kind+b.VLA)
	})
	for _, s := range cells {
		t.Rows = append(t.Rows, []Cell{Int(int64(s.Layer)), Text(s.Kind), LinkCell(s.VLA, link(s.VLA)), Num(m.Value(s))})
	}
	return t
}

func tensorsTable(ts []analysis.TensorStats, link func(string) string, self string) Table {
	t := Table{ID: "tensors", Title: "All tensors", Base: self, Columns: []string{
		"vla", "base", "component", "layer", "kind", "dtype_base", "dtype_vla", "shape_base", "shape_vla", "numel_compared",
		"fro_base", "fro_delta", "rel_delta", "cosine", "max_abs_delta", "mean_abs_delta", "changed_fraction"}}
	for i := range ts {
		s := &ts[i]
		t.Rows = append(t.Rows, []Cell{
			LinkCell(s.VLA, link(s.VLA)), NameCell(s.Base), Text(s.Component), Int(int64(s.Layer)), Text(s.Kind),
			Text(s.DTypeBase), Text(s.DTypeVLA), Text(Shape(s.ShapeBase)), Text(Shape(s.ShapeVLA)), Int(s.Compared),
			Num(float64(s.FroBase)), Num(float64(s.FroDelta)), Num(float64(s.RelDelta)), Num(float64(s.Cosine)),
			Num(float64(s.MaxAbsDelta)), Num(float64(s.MeanAbsDelta)), Num(float64(s.ChangedFraction)),
		})
	}
	return t
}

// componentTable sums each component: its tensors, parameters, and its
// relative ΔW over all its numeric tensors, √Σ‖ΔW‖² / √Σ‖W‖².
func componentTable(ts []analysis.TensorStats, self string) Table {
	type agg struct {
		n, params int64
		d2, b2    float64
	}
	by := map[string]*agg{}
	for i := range ts {
		s := &ts[i]
		a := by[s.Component]
		if a == nil {
			a = &agg{}
			by[s.Component] = a
		}
		a.n++
		a.params += s.Compared
		if s.Numeric && !math.IsNaN(float64(s.FroDelta)) && !math.IsNaN(float64(s.FroBase)) {
			a.d2 += float64(s.FroDelta) * float64(s.FroDelta)
			a.b2 += float64(s.FroBase) * float64(s.FroBase)
		}
	}
	t := Table{ID: "components", Title: "Components", Base: self, Columns: []string{"component", "tensors", "params_compared", "rel_delta"}}
	for _, c := range viz.Components(ts) {
		a := by[c]
		rel := math.NaN()
		if a.b2 > 0 {
			rel = math.Sqrt(a.d2) / math.Sqrt(a.b2)
		}
		t.Rows = append(t.Rows, []Cell{Text(c), Int(a.n), Int(a.params), Num(rel)})
	}
	return t
}

// extremeTables ranks tensors by relative ΔW: with weightsOnly the weight
// matrices (viz.IsWeight: the modules a mask can prune; tokens, norms and
// biases would crowd the list), else every numeric tensor.
func extremeTables(ts []analysis.TensorStats, n int, weightsOnly bool, link func(string) string, self string) (most, least Table) {
	var ws []*analysis.TensorStats
	for i := range ts {
		if ts[i].Numeric && (!weightsOnly || viz.IsWeight(&ts[i])) && !math.IsNaN(float64(ts[i].RelDelta)) {
			ws = append(ws, &ts[i])
		}
	}
	slices.SortStableFunc(ws, func(a, b *analysis.TensorStats) int { return cmp.Compare(b.RelDelta, a.RelDelta) })
	cols := []string{"tensor", "component", "layer", "kind", "rel_delta", "fro_delta"}
	row := func(s *analysis.TensorStats) []Cell {
		return []Cell{LinkCell(s.VLA, link(s.VLA)), Text(s.Component), Int(int64(s.Layer)), Text(s.Kind), Num(float64(s.RelDelta)), Num(float64(s.FroDelta))}
	}
	most = Table{ID: "most", Title: "Most changed modules", Columns: cols, Base: self, Empty: "No weight matrices were compared."}
	least = Table{ID: "least", Title: "Least changed modules", Columns: cols, Base: self, Empty: "No weight matrices were compared."}
	if !weightsOnly {
		most.Title, least.Title = "Most changed tensors", "Least changed tensors"
	}
	for i := 0; i < min(n, len(ws)); i++ {
		most.Rows = append(most.Rows, row(ws[i]))
		least.Rows = append(least.Rows, row(ws[len(ws)-1-i]))
	}
	return most, least
}

func unmatchedTables(al *analysis.Result, self string) []Table {
	baseOnly := Table{ID: "base_only", Title: "Only in the base model", Columns: []string{"name"}, Base: self, Empty: "Every base tensor has a counterpart."}
	for _, n := range al.BaseOnly {
		baseOnly.Rows = append(baseOnly.Rows, []Cell{Text(n)})
	}
	vlaOnly := Table{ID: "vla_only", Title: "Only in the VLA", Columns: []string{"name"}, Base: self, Empty: "Every VLA tensor has a counterpart."}
	for _, n := range al.VLAOnly {
		vlaOnly.Rows = append(vlaOnly.Rows, []Cell{Text(n)})
	}
	mism := Table{ID: "mismatched", Title: "Mismatched shapes", Columns: []string{"base", "vla", "shape_base", "shape_vla", "compared", "reason"}, Base: self, Empty: "No aligned pair differs in shape."}
	for _, m := range al.Mismatched {
		mism.Rows = append(mism.Rows, []Cell{Text(m.Base), Text(m.VLA), Text(Shape(m.ShapeBase)), Text(Shape(m.ShapeVLA)), {Text: yesNo(m.Compared), Value: m.Compared}, Text(m.Reason)})
	}
	amb := Table{ID: "ambiguous", Title: "Ambiguous names", Columns: []string{"name", "side", "candidates"}, Base: self, Empty: "No name matched more than one tensor."}
	for _, a := range al.Ambiguous {
		amb.Rows = append(amb.Rows, []Cell{Text(a.Name), Text(a.Side), {Text: strings.Join(a.Candidates, ", "), Value: a.Candidates}})
	}
	return []Table{baseOnly, vlaOnly, mism, amb}
}

// nameValue is what the rename field starts with: the given name, or empty
// (the default shows as its placeholder).
func nameValue(a *store.Analysis) string {
	if a.Named {
		return a.Name
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes, on the overlap"
	}
	return "no"
}
