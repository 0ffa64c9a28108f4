package web

import (
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web/viz"
)

// AnalysesTable lists analyses, newest first, as the home page shows them.
func AnalysesTable(list []store.Analysis) Table {
	t := Table{ID: "analyses", Title: "Analyses", Base: HomePath, Empty: "No analyses yet.",
		Columns: []string{"id", "status", "base", "vla", "params_vla", "global_rel_delta", "created", "finished"}}
	for i := range list {
		a := &list[i]
		params, rel := Cell{Text: "–", Num: true}, Cell{Text: "–", Num: true}
		if a.Summary != nil {
			params = Cell{Text: viz.FormatCount(a.Summary.VLAParams), Value: a.Summary.VLAParams, Num: true}
			rel = Num(float64(a.Summary.GlobalRelDelta))
		}
		t.Rows = append(t.Rows, []Cell{
			LinkCell(a.ID, AnalysisURL(a.ID)), {Text: string(a.Status), Value: string(a.Status)},
			Text(Sources(a.Request.Base)), Text(Sources(a.Request.VLA)), params, rel,
			{Text: When(&a.CreatedAt), Value: a.CreatedAt}, {Text: When(a.FinishedAt), Value: a.FinishedAt},
		})
	}
	return t
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
