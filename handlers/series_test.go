package handlers

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/analysis/synth"
	"github.com/deltascope/deltascope/store"
)

// genSeries writes a 3-checkpoint TinyLlama-shaped run under the server's root.
func (s *pageServer) genSeries(t *testing.T, name string) *synth.Series {
	t.Helper()
	run, err := synth.GenerateSeries(context.Background(), synth.Options{Preset: "tinyllama", Scale: 0.05, Out: filepath.Join(s.root, name)}, 3)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

type seriesJSON struct {
	ID    string `json:"id"`
	Done  bool   `json:"done"`
	Steps []struct {
		Step       int64              `json:"step"`
		AnalysisID string             `json:"analysis_id"`
		DriftID    string             `json:"drift_id"`
		Status     string             `json:"status"`
		Delta      map[string]float64 `json:"rel_delta"`
		Drift      map[string]float64 `json:"rel_drift"`
	} `json:"steps"`
}

func (s *pageServer) waitSeries(t *testing.T, id string) seriesJSON {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		code, b := doJSON(t, "GET", s.URL+"/api/series/"+id, "")
		var v seriesJSON
		if code != http.StatusOK || json.Unmarshal(b, &v) != nil {
			t.Fatalf("GET series: %d %s", code, b)
		}
		for _, st := range v.Steps {
			if st.Status == "failed" || st.Status == "cancelled" {
				t.Fatalf("step %d: %s", st.Step, st.Status)
			}
		}
		if v.Done {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("series %s did not finish", id)
	return seriesJSON{}
}

// TestAPISeries creates a run from its checkpoints (steps given and read from
// the names), follows it to the end, and checks the trajectory: ΔW against the
// base grows step by step, the drift is measured between checkpoints, and a
// second series of the same files reuses every analysis.
func TestAPISeries(t *testing.T) {
	s := newPageServer(t, true)
	s.genSeries(t, "run")
	body := `{"name": "tiny run", "base": ["run/base/model.safetensors"], "checkpoints": [
		{"vla": ["run/checkpoint-2000/model.safetensors"]},
		{"step": 1000, "vla": ["run/checkpoint-1000/model.safetensors"]},
		{"vla": ["run/checkpoint-3000/model.safetensors"]}]}`
	code, b := doJSON(t, "POST", s.URL+"/api/series", body)
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	var created seriesJSON
	json.Unmarshal(b, &created)
	v := s.waitSeries(t, created.ID)
	if len(v.Steps) != 3 || v.Steps[0].Step != 1000 || v.Steps[2].Step != 3000 {
		t.Fatalf("steps %+v", v.Steps)
	}
	if v.Steps[0].DriftID != v.Steps[0].AnalysisID || v.Steps[1].DriftID == v.Steps[1].AnalysisID {
		t.Errorf("drift analyses: %+v", v.Steps)
	}
	for i := 1; i < 3; i++ {
		if !(v.Steps[i].Delta[""] > v.Steps[i-1].Delta[""]) || !(v.Steps[i].Delta["llm"] > v.Steps[i-1].Delta["llm"]) {
			t.Errorf("ΔW does not grow from step %d to %d: %v → %v", v.Steps[i-1].Step, v.Steps[i].Step, v.Steps[i-1].Delta, v.Steps[i].Delta)
		}
		if d := v.Steps[i].Drift[""]; !(d > 0) || d >= v.Steps[i].Delta[""] {
			t.Errorf("step %d: drift %v against ΔW %v", v.Steps[i].Step, d, v.Steps[i].Delta[""])
		}
	}
	// The drift is the distance between consecutive checkpoints: gen moves the
	// language model as (t/n)²·ΔW, so from step 1 to 2 of 3 it moves by
	// (4/9 − 1/9)·ΔW and from 2 to 3 by (1 − 4/9)·ΔW. Relative to ‖W‖, which
	// the fine-tune barely changes, the drift is that fraction of the last
	// step's relative ΔW, within the BF16 storage rounding.
	final := v.Steps[2].Delta["llm"]
	for i, frac := range map[int]float64{1: 4.0/9 - 1.0/9, 2: 1 - 4.0/9} {
		if got := v.Steps[i].Drift["llm"] / final; math.Abs(got-frac) > 0.05*frac {
			t.Errorf("llm drift into step %d: %.4f of the final ΔW, want %.4f (from the checkpoints themselves)", v.Steps[i].Step, got, frac)
		}
	}

	// The same files by folder: every analysis comes from the cache.
	code, b = doJSON(t, "POST", s.URL+"/api/series", `{"name": "again", "base": ["run/base/model.safetensors"], "folder": "run"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST by folder: %d %s", code, b)
	}
	var again seriesJSON
	json.Unmarshal(b, &again)
	if len(again.Steps) != 3 {
		t.Fatalf("by folder: %d steps", len(again.Steps))
	}
	for i := range again.Steps {
		if again.Steps[i].AnalysisID != v.Steps[i].AnalysisID || again.Steps[i].DriftID != v.Steps[i].DriftID {
			t.Errorf("step %d: analyses %s/%s, want the cached %s/%s", again.Steps[i].Step, again.Steps[i].AnalysisID, again.Steps[i].DriftID,
				v.Steps[i].AnalysisID, v.Steps[i].DriftID)
		}
	}
	if code, b := doJSON(t, "GET", s.URL+"/api/series", ""); code != http.StatusOK || !strings.Contains(string(b), `"again"`) {
		t.Errorf("list: %d %s", code, b)
	}

	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"no name", `{"base": ["run/base/model.safetensors"], "folder": "run"}`, 400, "name"},
		{"no checkpoints", `{"name": "x", "base": ["run/base/model.safetensors"]}`, 400, "checkpoints"},
		{"step twice", `{"name": "x", "base": ["run/base/model.safetensors"], "checkpoints": [{"step": 5, "vla": ["run/checkpoint-1000"]}, {"step": 5, "vla": ["run/checkpoint-2000"]}]}`, 400, "twice"},
		{"no step in the name", `{"name": "x", "base": ["run/base/model.safetensors"], "checkpoints": [{"vla": ["run/base/model.safetensors"]}]}`, 400, "give its step"},
		{"folder outside the roots", `{"name": "x", "base": ["run/base/model.safetensors"], "folder": "/etc"}`, 400, "outside"},
		{"a missing checkpoint", `{"name": "x", "base": ["run/base/model.safetensors"], "checkpoints": [{"step": 1, "vla": ["run/nope"]}]}`, 400, "nope"},
		{"bad map rule", `{"name": "x", "base": ["b"], "map": ["(=>"], "folder": "run"}`, 400, "map rule"},
	} {
		code, b := doJSON(t, "POST", s.URL+"/api/series", tc.body)
		if code != tc.code || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %s, want %d mentioning %q", tc.name, code, b, tc.code, tc.want)
		}
	}
	if code, _ := doJSON(t, "GET", s.URL+"/api/series/nope", ""); code != http.StatusNotFound {
		t.Errorf("unknown series: %d", code)
	}
}

// TestBrowserSeries: create a run with the form, watch its charts fill in
// (the whole model and each component along the steps), and click a
// layer × step cell, then a point of the ΔW line, to open that analysis.
func TestBrowserSeries(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	s.genSeries(t, "run")
	browserDo(t, ctx, "open /series", 20*time.Second, chromedp.Navigate(s.URL+"/series"),
		chromedp.WaitReady(chromedp.CSS(`[data-testid="series-form"]`)))
	browserDo(t, ctx, "fill the form", 20*time.Second,
		chromedp.SetValue(chromedp.CSS(`[data-testid="series-name"]`), "tiny run"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="series-base"]`), "run/base/model.safetensors"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="series-checkpoints"]`),
			"run/checkpoint-1000/model.safetensors\nrun/checkpoint-2000/model.safetensors\n3000 run/checkpoint-3000/model.safetensors"),
		chromedp.Click(chromedp.CSS(`[data-testid="series-create"]`)))
	browserWait(t, ctx, "the series page", `!!document.querySelector('[data-testid="series-title"]')`, 20*time.Second)
	browserWait(t, ctx, "every analysis done", `document.querySelector('[data-testid="series"]')?.dataset.done === '1'`, 90*time.Second)
	browserWait(t, ctx, "the ΔW lines", `document.getElementById('series-delta')?.dataset.drawn === '1'`, 20*time.Second)
	browserWait(t, ctx, "the drift lines", `document.getElementById('series-drift')?.dataset.drawn === '1'`, 20*time.Second)
	points := browserEval[int](t, ctx, `echarts.getInstanceByDom(document.getElementById('series-drift')).getOption().series[0].data.filter(v => v !== null && v !== '-').length`)
	if points != 3 {
		t.Errorf("drift line has %d points, want 3", points)
	}
	lines := browserEval[[]string](t, ctx, `echarts.getInstanceByDom(document.getElementById('series-delta')).getOption().series.map(s => s.name)`)
	if strings.Join(lines, ",") != "whole model,llm,embed,lm_head" {
		t.Errorf("ΔW lines %v, want the whole model and each component", lines)
	}
	if rows := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid="table-steps"] tbody tr').length`); rows != 3 {
		t.Errorf("steps table has %d rows", rows)
	}
	browserWait(t, ctx, "a layer × step heatmap", heatmapDrawn("series-llm-ffn-up"), 20*time.Second)
	cols := browserEval[int](t, ctx, `JSON.parse(document.getElementById('series-llm-ffn-up-data').textContent).meta.x_labels.length`)
	if cols != 3 {
		t.Errorf("heatmap has %d step columns", cols)
	}
	step2 := browserEval[string](t, ctx, `document.querySelector('[data-testid="table-steps"] tbody tr:nth-child(2) code.id').title`)
	// Click, with the mouse, a cell of the second step's column.
	browserDo(t, ctx, "scroll to the heatmap", 10*time.Second, chromedp.ScrollIntoView(chromedp.CSS("#series-llm-ffn-up")))
	pt := browserEval[[]float64](t, ctx, `(() => { const el = document.getElementById('series-llm-ffn-up');
		const c = echarts.getInstanceByDom(el); const d = c.getOption().series[0].data.find(d => d.value[0] === 1);
		const p = c.convertToPixel({seriesIndex: 0}, [d.value[0], d.value[1]]); const r = el.getBoundingClientRect();
		return [r.left + p[0], r.top + p[1]]; })()`)
	browserDo(t, ctx, "click a cell", 10*time.Second, chromedp.MouseClickXY(pt[0], pt[1]))
	browserWait(t, ctx, "that step's analysis", `location.pathname === '/analyses/' + `+jsString(step2), 20*time.Second)

	// A point of the ΔW line opens its step's analysis too.
	browserDo(t, ctx, "back to the series", 20*time.Second, chromedp.NavigateBack())
	browserWait(t, ctx, "the ΔW lines again", `document.getElementById('series-delta')?.dataset.drawn === '1'`, 20*time.Second)
	step3 := browserEval[string](t, ctx, `document.querySelector('[data-testid="table-steps"] tbody tr:nth-child(3) code.id').title`)
	browserDo(t, ctx, "scroll to the lines", 10*time.Second, chromedp.ScrollIntoView(chromedp.CSS("#series-delta")))
	pt = browserEval[[]float64](t, ctx, `(() => { const el = document.getElementById('series-delta');
		const c = echarts.getInstanceByDom(el); const d = c.getOption().series[0].data[2];
		const p = c.convertToPixel({seriesIndex: 0}, [2, d !== null && typeof d === 'object' ? d.value : d]);
		const r = el.getBoundingClientRect(); return [r.left + p[0], r.top + p[1]]; })()`)
	browserDo(t, ctx, "click the third point", 10*time.Second, chromedp.MouseClickXY(pt[0], pt[1]))
	browserWait(t, ctx, "the third step's analysis", `location.pathname === '/analyses/' + `+jsString(step3), 20*time.Second)
}

// TestSeriesFormErrors: a refused form comes back with the reason and with
// what was typed, at the status the API would give.
func TestSeriesFormErrors(t *testing.T) {
	s := newPageServer(t, false)
	post := func(form url.Values) (int, string) {
		resp, page := postSeriesForm(t, s.URL, form)
		return resp.StatusCode, page
	}
	code, body := post(url.Values{"name": {"my run"}, "base": {"pi05/base"}, "checkpoints": {"pi05/vla/model.safetensors"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "give its step") || !strings.Contains(body, `value="my run"`) ||
		!strings.Contains(body, "pi05/vla/model.safetensors</textarea>") {
		t.Errorf("no step: %d\n%s", code, body)
	}
	code, body = post(url.Values{"name": {"my run"}, "base": {"pi05/base"}, "checkpoints": {"7 pi05/nope"}})
	if code != http.StatusBadRequest || !strings.Contains(body, "nope") {
		t.Errorf("missing checkpoint: %d\n%s", code, body)
	}
	resp, err := http.Get(s.URL + "/series")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `data-testid="no-series"`) {
		t.Errorf("empty list: %d", resp.StatusCode)
	}
}

// TestAPISeriesFolderOfLinks: in a folder of checkpoints, a link to a
// checkpoint folder is a checkpoint too; one that leads out of its folder is
// refused with its name, as any source's link is, rather than dropped.
func TestAPISeriesFolderOfLinks(t *testing.T) {
	s := newPageServer(t, false)
	s.genSeries(t, "run")
	links := filepath.Join(s.root, "links")
	copyTree(t, filepath.Join(s.root, "run", "checkpoint-1000"), filepath.Join(links, ".trainer", "a"))
	copyTree(t, filepath.Join(s.root, "run", "checkpoint-2000"), filepath.Join(links, ".trainer", "b"))
	for link, target := range map[string]string{"step_1000": ".trainer/a", "global_step2000": ".trainer/b",
		"step_4000": ".trainer/a/model.safetensors"} {
		if err := os.Symlink(target, filepath.Join(links, link)); err != nil {
			t.Fatal(err)
		}
	}
	code, b := doJSON(t, "POST", s.URL+"/api/series", `{"name": "links", "base": ["run/base/model.safetensors"], "folder": "links"}`)
	var got seriesJSON
	if json.Unmarshal(b, &got); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	// step_4000 links to a file, not a checkpoint folder: not a step.
	if len(got.Steps) != 2 || got.Steps[0].Step != 1000 || got.Steps[1].Step != 2000 {
		t.Fatalf("steps %+v", got.Steps)
	}

	escape := filepath.Join(s.root, "escape")
	if err := os.Mkdir(escape, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run/checkpoint-3000", filepath.Join(escape, "checkpoint-3000")); err != nil {
		t.Fatal(err)
	}
	code, b = doJSON(t, "POST", s.URL+"/api/series", `{"name": "escape", "base": ["run/base/model.safetensors"], "folder": "escape"}`)
	if code != http.StatusForbidden || !strings.Contains(string(b), "checkpoint-3000") || !strings.Contains(string(b), "outside") {
		t.Errorf("a link out of its folder: %d %s", code, b)
	}
}

// TestAPISeriesGenJSON: the series.json that `gen --series` writes is a
// POST /api/series body as it stands, for a server whose root is the run.
func TestAPISeriesGenJSON(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if _, err := synth.GenerateSeries(context.Background(), synth.Options{Preset: "tinyllama", Scale: 0.02, Out: run}, 2); err != nil {
		t.Fatal(err)
	}
	l := startLiveServer(t, testServerOptions{config: func(c *Config) { c.Roots = append(c.Roots, run) }})
	body, err := os.ReadFile(filepath.Join(run, "series.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, b := doJSON(t, "POST", l.URL+"/api/series", string(body))
	var got struct {
		Name  string             `json:"name"`
		Steps []store.SeriesStep `json:"steps"`
	}
	if json.Unmarshal(b, &got); code != http.StatusCreated {
		t.Fatalf("POST series.json: %d %s", code, b)
	}
	if got.Name != "run" || len(got.Steps) != 2 || got.Steps[1].Step != 2000 || !strings.HasPrefix(got.Steps[1].VLA[0], filepath.Join(run, "checkpoint-2000")) {
		t.Errorf("series %s", b)
	}
}

// TestSeriesFormFolder: the form's folder field alone makes a series of the
// folder's checkpoints, and the browser lands on its page.
func TestSeriesFormFolder(t *testing.T) {
	s := newPageServer(t, false)
	s.genSeries(t, "run")
	form := url.Values{"name": {"by folder"}, "base": {"run/base/model.safetensors"}, "folder": {"run"}}
	resp, _ := postSeriesForm(t, s.URL, form)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/series/") {
		t.Fatalf("form: %d, Location %q", resp.StatusCode, loc)
	}
	code, b := doJSON(t, "GET", s.URL+"/api/series/"+strings.TrimPrefix(loc, "/series/"), "")
	var got seriesJSON
	if json.Unmarshal(b, &got); code != http.StatusOK || len(got.Steps) != 3 || got.Steps[0].Step != 1000 || got.Steps[2].Step != 3000 {
		t.Errorf("the series made from the folder: %d %s", code, b)
	}
}

// TestSeriesQueueFullFormAndAPI: a series that would queue more analyses than
// the limit is refused whole, with the same status and message from the API
// and from the form (one error mapping), and nothing is queued.
func TestSeriesQueueFullFormAndAPI(t *testing.T) {
	s := newGuardedServer(t, false, func(c *Config) { c.Guard.MaxQueuedAnalyses = 5 })
	if _, err := synth.GenerateSeries(context.Background(), synth.Options{Preset: "tinyllama", Scale: 0.02, Out: filepath.Join(s.root, "run")}, 3); err != nil {
		t.Fatal(err)
	}
	const want = "a series of 3 checkpoints queues up to 6 analyses; 0 are waiting already (limit 5)"
	resp, err := quickClient.Post(s.URL+"/api/series", "application/json", strings.NewReader(`{"name": "full", "base": ["run/base/model.safetensors"], "folder": "run"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code, body := resp.StatusCode, string(b); code != http.StatusTooManyRequests || !strings.Contains(body, want) {
		t.Errorf("API: %d %s, want 429 with %q", code, body, want)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Error("API: a 429 without Retry-After")
	}
	form := url.Values{"name": {"full"}, "base": {"run/base/model.safetensors"}, "folder": {"run"}}
	resp, page := postSeriesForm(t, s.URL, form)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(page, want) || !strings.Contains(page, `value="full"`) {
		t.Errorf("form: %d, want 429 with %q and what was typed\n%s", resp.StatusCode, want, page)
	}
	if n := s.analysisRows(t); n != 0 {
		t.Errorf("%d analyses queued, want none", n)
	}
}

// postSeriesForm posts the training-run form as a browser on the page would
// (same origin) and returns the answer as it comes, redirects not followed,
// with its body read.
func postSeriesForm(t *testing.T, serverURL string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", serverURL+"/series", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", serverURL)
	client := &http.Client{Timeout: quickClient.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp, string(page)
}
