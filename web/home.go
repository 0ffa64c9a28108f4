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
