package handlers

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/web"
)

// A training run's table of checkpoints names each step's analysis by its
// name, linked, with the short id under it and the whole id as its tooltip,
// as the home page does; it listed the ids alone.
func TestBrowserSeriesStepsByName(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	s.genSeries(t, "run")
	code, body := send(t, "POST", s.URL+"/api/series", "application/json", `{"name": "tiny run", "base": ["run/base/model.safetensors"], "folder": "run"}`)
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(body), &created); code != http.StatusCreated || err != nil {
		t.Fatalf("create the series: %d %s", code, body)
	}
	v := s.waitSeries(t, created.ID)
	var api struct {
		Steps []struct {
			Step       int64  `json:"step"`
			Name       string `json:"name"`
			AnalysisID string `json:"analysis_id"`
		} `json:"steps"`
	}
	if code, b := doJSON(t, "GET", s.URL+"/api/series/"+created.ID, ""); code != http.StatusOK || json.Unmarshal(b, &api) != nil || len(api.Steps) != len(v.Steps) {
		t.Fatalf("GET series: %d %s", code, b)
	}
	browserDo(t, ctx, "open the run", 20*time.Second, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(s.URL+"/series/"+created.ID), jsReady)
	rows := browserEval[[][]string](t, ctx, `[...document.querySelectorAll('[data-testid="table-steps"] tbody tr')].map(r => { const a = r.cells[1].querySelector('a'), c = r.cells[1].querySelector('code.id');
		return [r.cells[0].textContent.trim(), a ? a.textContent.trim() : '', a ? a.getAttribute('href') : '', c ? c.textContent : '', c ? c.title : '']; })`)
	if len(rows) != 3 || len(api.Steps) != 3 {
		t.Fatalf("steps table %q, API steps %+v", rows, api.Steps)
	}
	for i, r := range rows {
		st := api.Steps[i]
		want := "tiny run · step " + r[0]
		if st.Name != want || r[1] != want {
			t.Errorf("step %s: named %q on the page, %q by the API; want %q", r[0], r[1], st.Name, want)
		}
		if r[2] != web.AnalysisURL(st.AnalysisID) || r[4] != st.AnalysisID || r[3] != web.ShortID(st.AnalysisID) || r[3] == st.AnalysisID {
			t.Errorf("step %s: link %q, id %q with tooltip %q; want %s shortened", r[0], r[2], r[3], r[4], st.AnalysisID)
		}
	}
	// The name is not broken one letter per line: the column keeps its width.
	if w := browserEval[float64](t, ctx, `Math.min(...[...document.querySelectorAll('[data-testid="table-steps"] tbody tr')].map(r => r.cells[1].getBoundingClientRect().width))`); w < 120 {
		t.Errorf("the analysis column is %.0f px wide", w)
	}
}
