package handlers

import (
	"net/http"

	"github.com/deltascope/deltascope/analysis"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
	"github.com/deltascope/deltascope/web/viz"
)

// overviewThread is the thread the overview shows: the selected cell's when
// the URL selects a tensor (sel=NAME), the analysis's otherwise. A cell is
// keyed by component, layer and heatmap row, not by tensor name, so that the
// thread is about the place on the map.
func (s *Server) overviewThread(r *http.Request, id string, ts []analysis.TensorStats, st web.OverviewState) (web.CommentThread, error) {
	if st.Selected != "" {
		if comp, layer, module, ok := viz.CellOf(ts, st.Selected); ok {
			return s.commentThread(r, id, store.TargetCell, store.CellKey(comp, layer, module),
				"Comments on the cell "+web.CellTitle(comp, layer, module))
		}
	}
	return s.commentThread(r, id, store.TargetAnalysis, "", "Comments on this analysis")
}
