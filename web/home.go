package web

import (
	"net/url"
	"strings"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// AnalysesTable lists analyses, newest first, as the home page shows them
// (the CSV and JSON downloads of the list).
func AnalysesTable(list []store.Analysis) Table {
	t := Table{ID: "analyses", Title: "Analyses", Base: HomePath, Empty: "No analyses yet.",
		Columns: []string{"id", "name", "tags", "status", "base", "vla", "params_vla", "global_rel_delta", "created", "finished"}}
	for i := range list {
		a := &list[i]
		params, rel := Cell{Text: "–", Num: true}, Cell{Text: "–", Num: true}
		if a.Summary != nil {
			params = Cell{Text: viz.FormatCount(a.Summary.VLAParams), Value: a.Summary.VLAParams, Num: true}
			rel = Num(float64(a.Summary.GlobalRelDelta))
		}
		t.Rows = append(t.Rows, []Cell{
			LinkCell(a.ID, AnalysisURL(a.ID)), LinkCell(DisplayName(a), AnalysisURL(a.ID)),
			{Text: strings.Join(a.Tags, ", "), Value: a.Tags}, {Text: string(a.Status), Value: string(a.Status)},
			Text(Sources(a.Request.Base)), Text(Sources(a.Request.VLA)), params, rel,
			{Text: When(&a.CreatedAt), Value: a.CreatedAt}, {Text: When(a.FinishedAt), Value: a.FinishedAt},
		})
	}
	return t
}

// HomeRow is one analysis as the home page lists it: its name first (the id
// is a tooltip and a short code), what it compares, how far it is, and what
// to do next.
type HomeRow struct {
	ID, Name, Status string
	Tags             []string
	Base, VLA        string
	// BaseOrigins and VLAOrigins, when the handler sets them, show each
	// source with its origin badge instead of Base and VLA.
	BaseOrigins, VLAOrigins []Origin
	Params, RelDelta        string
	Created                 string
	Href, Compose           string // Compose is empty until the analysis is done
	// Filter is the text the filter box matches (lower case).
	Filter string
}

// Home is the home page: the analyses (filtered by Filter), the compare
// picker, the checkpoints.
type Home struct {
	Filter      string
	Total       int // analyses before filtering
	Rows        []HomeRow
	Analyses    Table
	Compare     []Choice
	Checkpoints Table
}

// BuildHome lays out the home page; filter keeps the analyses whose name,
// tags, id, status or sources hold every word of it.
func BuildHome(list []store.Analysis, filter string, cps []store.CheckpointSummary) Home {
	h := Home{Filter: strings.TrimSpace(filter), Total: len(list), Compare: AnalysisChoices(list), Checkpoints: CheckpointsTable(cps)}
	var kept []store.Analysis
	for i := range list {
		a := &list[i]
		if !a.MatchesFilter(h.Filter) {
			continue
		}
		kept = append(kept, *a)
		r := HomeRow{ID: a.ID, Name: DisplayName(a), Status: string(a.Status), Tags: a.Tags,
			Base: Sources(a.Request.Base), VLA: Sources(a.Request.VLA), Params: "–", RelDelta: "–",
			Created: When(&a.CreatedAt), Href: AnalysisURL(a.ID)}
		if a.Summary != nil {
			r.Params, r.RelDelta = viz.FormatCount(a.Summary.VLAParams), viz.FormatValue(float64(a.Summary.GlobalRelDelta))
		}
		if a.Status == store.StatusDone {
			r.Compose = ComposeURL(a.ID, 0)
		}
		r.Filter = strings.ToLower(strings.Join(append([]string{r.Name, a.ID, r.Status, r.Base, r.VLA}, a.Tags...), " "))
		h.Rows = append(h.Rows, r)
	}
	h.Analyses = AnalysesTable(kept)
	if h.Filter != "" {
		h.Analyses.Base = HomePath + "?" + url.Values{"q": {h.Filter}}.Encode()
	}
	return h
}

// DisplayName is what pages call an analysis: its name, or for a value made
// outside the store (no name read), the default made from its sources.
func DisplayName(a *store.Analysis) string {
	if a.Name != "" {
		return a.Name
	}
	return store.DefaultName(a.Request)
}

// ShortID is the start of an id, for a narrow column; the whole id goes in a
// tooltip.
func ShortID(id string) string {
	if len(id) <= 6 {
		return id
	}
	return id[:6] + "…"
}

// CheckpointsTable lists the checkpoints the store knows, by content: the same
// files found at two places are one checkpoint with two locations.
func CheckpointsTable(list []store.CheckpointSummary) Table {
	t := Table{ID: "checkpoints", Title: "Checkpoints", Base: HomePath, Empty: "No checkpoints read yet.",
		Columns: []string{"fingerprint", "sources", "params", "bytes", "locations", "analyses", "first_seen"}}
	for i := range list {
		c := &list[i]
		short := c.Fingerprint
		if len(short) > 12 {
			short = short[:12]
		}
		t.Rows = append(t.Rows, []Cell{
			{Text: short, Value: c.Fingerprint}, Text(Sources(c.Sources)),
			{Text: viz.FormatCount(c.Params), Value: c.Params, Num: true},
			{Text: viz.FormatBytes(c.Bytes), Value: c.Bytes, Num: true},
			Int(int64(c.Locations)), Int(int64(c.Analyses)), {Text: When(&c.CreatedAt), Value: c.CreatedAt},
		})
	}
	return t
}
