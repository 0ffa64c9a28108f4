package web

import (
	"net/url"
	"strconv"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/analysis/arch"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// Axes a tensor page can show: output channels (rows, dim 0) or input
// channels (columns, the other dims flattened).
const (
	AxisRow    = "row"
	AxisColumn = "column"
)

// TensorPage is the view model of one tensor's page.
type TensorPage struct {
	Analysis *store.Analysis
	Tensor   *analysis.TensorStats
	Axis     string
	AxisTabs []Tab
	Back     string // the overview, in the state the user came from
	Charts   []viz.Chart
	Meta     Table
	Top      Table
	Bottom   Table
	Channels Table // download only
	// Note explains a missing chart (a 1-D tensor has no channels).
	Note string
	// Comments is the tensor's thread; nil leaves it off (the handler sets it).
	Comments *CommentThread
}

// columnUnits are the kinds whose prunable units are input columns: the FFN's
// down projection (channel j is column j) and attention's output projection.
var columnUnits = map[string]bool{"ffn_down": true, "ffn_fc2": true, "attn_o": true}

// BuildTensor lays out a tensor's page. t must carry its arrays. q is the
// request query: the overview state to go back to, and the axis.
func BuildTensor(a *store.Analysis, t *analysis.TensorStats, q url.Values) TensorPage {
	p := TensorPage{Analysis: a, Tensor: t, Axis: AxisRow}
	if columnUnits[t.Kind] {
		p.Axis = AxisColumn
	}
	if ax := q.Get("axis"); ax == AxisRow || ax == AxisColumn {
		p.Axis = ax
	}
	back := with(q, "axis", "", "format", "", "table", "")
	p.Back = AnalysisViewURL(a.ID, with(back, "sel", t.VLA))
	self := TensorURL(a.ID, t.VLA, with(back, "axis", p.Axis))
	for _, ax := range []string{AxisRow, AxisColumn} {
		p.AxisTabs = append(p.AxisTabs, Tab{ID: ax, Label: "per " + ax, Href: TensorURL(a.ID, t.VLA, with(back, "axis", ax)), Current: ax == p.Axis})
	}
	p.Meta = metaTable(a, t, self)

	delta, base := t.RowDelta, t.RowBase
	if p.Axis == AxisColumn {
		delta, base = t.ColDelta, t.ColBase
	}
	cs := viz.Channels(delta, base)
	p.Channels = Table{ID: "channels", Title: "Every " + p.Axis, Base: self, Columns: []string{p.Axis, "delta_norm", "base_norm", "rel_delta"}}
	for _, c := range cs {
		p.Channels.Rows = append(p.Channels.Rows, channelRow(c))
	}
	if len(cs) == 0 {
		p.Note = "This tensor has no per-channel norms (it has fewer than two dimensions, or it is not numeric)."
		return p
	}
	top, bottom := viz.Extremes(cs, 10)
	p.Top = channelTable("top", "Most changed "+p.Axis+"s", top, p.Axis, self)
	p.Bottom = channelTable("bottom", "Least changed "+p.Axis+"s", bottom, p.Axis, self)
	p.Charts = append(p.Charts, viz.ChannelLine("chart-channels", cs, p.Axis), viz.Histogram("chart-histogram", cs, 40, p.Axis))
	if g, ok := geometry(a, t.Component); ok {
		headAxis := AxisRow
		if t.Kind == "attn_o" {
			headAxis = AxisColumn
		}
		switch t.Kind {
		case "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_o":
			if p.Axis == headAxis {
				if c, ok := viz.HeadBars("chart-heads", cs, g.HeadDim, t.Kind == "attn_qkv"); ok {
					p.Charts = append(p.Charts, c)
				}
			}
		}
	}
	if len(base) > 0 {
		p.Charts = append(p.Charts, viz.NormScatter("chart-scatter", cs, p.Axis))
	}
	return p
}

func channelRow(c viz.Channel) []Cell {
	return []Cell{Int(int64(c.Index)), Num(float64(c.Delta)), Num(float64(c.Base)), Num(float64(c.Rel))}
}

func channelTable(id, title string, cs []viz.Channel, axis, self string) Table {
	t := Table{ID: id, Title: title, Base: self, Columns: []string{axis, "delta_norm", "base_norm", "rel_delta"}}
	for _, c := range cs {
		t.Rows = append(t.Rows, channelRow(c))
	}
	return t
}

func metaTable(a *store.Analysis, t *analysis.TensorStats, self string) Table {
	m := Table{ID: "meta", Title: "Statistics", Base: self, Columns: []string{"field", "value"}}
	add := func(k string, c Cell) { m.Rows = append(m.Rows, []Cell{Text(k), c}) }
	add("VLA name", Text(t.VLA))
	add("base name", Text(t.Base))
	add("component", Text(t.Component))
	add("layer", Int(int64(t.Layer)))
	add("kind", Text(t.Kind))
	if t.Of != "" {
		add("of", Text(t.Of))
	}
	add("aligned by", Text(t.Rule))
	add("dtype (base / VLA)", Text(t.DTypeBase+" / "+t.DTypeVLA))
	add("shape (base)", Text(Shape(t.ShapeBase)))
	add("shape (VLA)", Text(Shape(t.ShapeVLA)))
	add("elements compared", Int(t.Compared))
	if t.Overlap {
		add("compared on", Text("the rows both sides have (dim 0 differs)"))
	}
	add("‖W_base‖", Num(float64(t.FroBase)))
	add("‖W_VLA‖", Num(float64(t.FroVLA)))
	add("‖ΔW‖", Num(float64(t.FroDelta)))
	add("relative ΔW", Num(float64(t.RelDelta)))
	add("cosine", Num(float64(t.Cosine)))
	add("max |ΔW|", Num(float64(t.MaxAbsDelta)))
	add("mean |ΔW|", Num(float64(t.MeanAbsDelta)))
	add("changed fraction", Num(float64(t.ChangedFraction)))
	add("non-finite (base / VLA)", Text(strconv.FormatInt(t.NonFiniteBase, 10)+" / "+strconv.FormatInt(t.NonFiniteVLA, 10)))
	if g, ok := geometry(a, t.Component); ok {
		add("attention geometry", Text(strconv.Itoa(g.Heads)+" heads, "+strconv.Itoa(g.KVHeads)+" KV heads, head dim "+strconv.Itoa(g.HeadDim)))
	}
	return m
}

// Tables returns the page's tables by download id.
func (p TensorPage) Tables() []Table { return []Table{p.Meta, p.Top, p.Bottom, p.Channels} }

func geometry(a *store.Analysis, component string) (arch.Geometry, bool) {
	if a.Summary == nil {
		return arch.Geometry{}, false
	}
	g, ok := a.Summary.Geometry[component]
	return g, ok
}

func layerText(l int) string {
	if l < 0 {
		return "none"
	}
	return strconv.Itoa(l)
}
