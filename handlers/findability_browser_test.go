package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/store"
)

// The first ten minutes of a new user (issue 13), in a real browser on a real
// server: name an analysis in the form, find it by name on the home page,
// filter, reach the composer from the list and from the overview, rename and
// tag it there, read weights-only heatmaps with exact colour-bar ends, and
// read names that break at dots rather than one letter per line.
func TestBrowserNamesComposerLinksAndLayout(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)

	// ---- the form: a name and tags travel with the request
	browserDo(t, ctx, "open /new", 20*time.Second, chromedp.Navigate(s.URL+"/new"), jsReady)
	browserEval[bool](t, ctx, `localStorage.clear() || true`)
	browserDo(t, ctx, "reload /new", 20*time.Second, chromedp.Reload(), jsReady)
	if browserEval[bool](t, ctx, `!document.querySelector('[data-testid="restored"]').hidden`) {
		t.Error(`a clean browser is told its sources are "from last time"`)
	}
	// A fresh data folder has no uploads folder yet: browsing it is an empty
	// folder, not "internal error".
	browserDo(t, ctx, "pick files on the server", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-side="base"] [data-browse]`)))
	browserWait(t, ctx, "the file browser", `!!document.querySelector('[data-side="base"] [data-browser] .browser-head, [data-side="base"] [data-browser] .error')`, 10*time.Second)
	if e := browserEval[string](t, ctx, `document.querySelector('[data-side="base"] [data-browser] .error')?.textContent || ''`); e != "" {
		t.Errorf("Pick files on the server, on a fresh data folder: %q", e)
	}
	for _, side := range []struct{ side, path string }{{"base", "pi05/base"}, {"vla", "pi05/vla/model.safetensors"}} {
		browserDo(t, ctx, "add a "+side.side+" path", 10*time.Second,
			chromedp.SendKeys(chromedp.CSS(`[data-side="`+side.side+`"] input[name="path"]`), side.path),
			chromedp.Click(chromedp.CSS(`[data-side="`+side.side+`"] [data-add-path] button`)))
	}
	browserDo(t, ctx, "name and tag", 10*time.Second,
		chromedp.SendKeys(chromedp.CSS(`[data-testid="new-name"]`), "π0.5 fixture, run 1"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="new-tags"]`), "libero, smoke"),
		chromedp.Click(chromedp.CSS(`[data-testid="start"]`)))
	// The job page may already be turning into the overview: read the id in
	// the same evaluation that sees the analysis page.
	id := browserSettle[string](t, ctx, "the analysis page",
		`/\/analyses\/[^/]+$/.test(location.pathname) ? decodeURIComponent(location.pathname.split('/').pop()) : ''`, 20*time.Second)
	s.waitStatus(t, id, store.StatusDone)
	a, err := s.db.Get(context.Background(), id)
	if err != nil || a.Name != "π0.5 fixture, run 1" || strings.Join(a.Tags, ",") != "libero,smoke" {
		t.Fatalf("created analysis: %q %q (%v)", a.Name, a.Tags, err)
	}
	// The job page turns into the overview by itself; let it, then go back
	// to the form: the finished analysis's sources are gone.
	browserWait(t, ctx, "the overview", heatmapDrawn("heatmap-llm"), 30*time.Second)
	// Back (the browser may bring the page from its cache, as it was) ...
	browserEval[bool](t, ctx, `history.back() || true`)
	browserWait(t, ctx, "the form again", `location.pathname === '/new' && document.documentElement.dataset.js === 'ready'`, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // a page from the cache reloads itself
	browserWait(t, ctx, "the form ready", `document.documentElement.dataset.js === 'ready'`, 20*time.Second)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-sources] code').length`); n != 0 {
		t.Errorf("Back shows %d sources of the analysis the form started", n)
	}
	// ... and a fresh visit.
	browserDo(t, ctx, "open /new again", 20*time.Second, chromedp.Navigate(s.URL+"/new"), jsReady)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-sources] code').length`); n != 0 {
		t.Errorf("the form restored %d sources of the analysis it started", n)
	}
	// An unfinished visit's sources come back, labelled as from last time.
	browserDo(t, ctx, "add a source and leave", 10*time.Second,
		chromedp.SendKeys(chromedp.CSS(`[data-side="base"] input[name="path"]`), "pi05/base"),
		chromedp.Click(chromedp.CSS(`[data-side="base"] [data-add-path] button`)), chromedp.Reload(), jsReady)
	if !browserEval[bool](t, ctx, `!document.querySelector('[data-testid="restored"]').hidden && document.querySelectorAll('[data-sources] code').length === 1`) {
		t.Error(`restored sources are not labelled "from last time"`)
	}
	browserDo(t, ctx, "start afresh", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="clear-saved"]`)), chromedp.Sleep(300*time.Millisecond), jsReady)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-sources] code').length`); n != 0 {
		t.Errorf("%d sources left after Start afresh", n)
	}

	// A second, unnamed analysis (a map rule makes it a new one): the default name.
	second := s.createAnalysis(t, `{"base": ["pi05/base"], "vla": ["pi05/vla"], "map": ["^nothing-matches=>x"]}`)
	s.waitStatus(t, second, store.StatusDone)

	// ---- home: names, status, ΔW, the composer, the filter
	browserDo(t, ctx, "open home", 20*time.Second, chromedp.Navigate(s.URL+"/"), jsReady)
	names := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid="analysis-name"]')].map(a => a.textContent)`)
	if len(names) != 2 || names[0] != "vla vs base" || names[1] != "π0.5 fixture, run 1" {
		t.Errorf("home lists %q", names)
	}
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid="compose-link"]').length`); n != 2 {
		t.Errorf("%d composer links on the home page, want one per done analysis", n)
	}
	if d := browserEval[string](t, ctx, `document.querySelector('[data-testid="analysis-`+id+`"] [data-testid="rel-delta"]').textContent`); d == "–" || d == "" {
		t.Errorf("global ΔW %q", d)
	}
	if opts := browserEval[string](t, ctx, `[...document.querySelectorAll('[data-testid="compare-picker"] option')].map(o => o.textContent).join('|')`); !strings.Contains(opts, "π0.5 fixture, run 1 · "+id) {
		t.Errorf("compare picker options %q lack the name", opts)
	}
	browserDo(t, ctx, "filter", 10*time.Second, chromedp.SendKeys(chromedp.CSS(`[data-testid="filter"]`), "SMOKE"))
	if shown := browserEval[[]string](t, ctx, `[...document.querySelectorAll('#analyses-list tbody tr:not([hidden]) [data-testid="analysis-name"]')].map(a => a.textContent)`); len(shown) != 1 || shown[0] != "π0.5 fixture, run 1" {
		t.Errorf("filter 'SMOKE' shows %q", shown)
	}
	browserDo(t, ctx, "filter for nothing", 10*time.Second, chromedp.SendKeys(chromedp.CSS(`[data-testid="filter"]`), " nothing-matches"))
	if !browserEval[bool](t, ctx, `!document.querySelector('[data-testid="filter-empty"]').hidden`) {
		t.Error("no 'nothing matches' note when the filter hides every row")
	}
	// Without JavaScript the filter is ?q=, filtered by the server.
	resp, err := http.Get(s.URL + "/?q=smoke&format=json&table=analyses")
	if err != nil {
		t.Fatal(err)
	}
	var listed struct{ Rows []map[string]any }
	json.NewDecoder(resp.Body).Decode(&listed)
	resp.Body.Close()
	if len(listed.Rows) != 1 || listed.Rows[0]["id"] != id {
		t.Errorf("?q=smoke lists %v", listed.Rows)
	}
	browserDo(t, ctx, "reload home", 20*time.Second, chromedp.Navigate(s.URL+"/"), jsReady)
	browserDo(t, ctx, "compose from the list", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="analysis-`+id+`"] [data-testid="compose-link"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="preset-select"]`)))
	if p := browserEval[string](t, ctx, `location.pathname`); p != "/analyses/"+id+"/compose" {
		t.Errorf("the list's composer link led to %s", p)
	}

	// ---- overview: compose action, rename and tag, weights only
	browserDo(t, ctx, "open the overview", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id))
	browserWait(t, ctx, "heatmap", heatmapDrawn("heatmap-llm"), 20*time.Second)
	if href := browserEval[string](t, ctx, `document.querySelector('[data-testid="compose-link"]').getAttribute('href')`); href != "/analyses/"+id+"/compose" {
		t.Errorf("overview composer link %q", href)
	}
	browserDo(t, ctx, "rename and tag", 20*time.Second,
		chromedp.Click(chromedp.CSS(`[data-testid="edit-labels"] summary`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid="name-input"]`), "π0.5 renamed"),
		chromedp.SetValue(chromedp.CSS(`[data-testid="tags-input"]`), "libero, final , "),
		chromedp.Click(chromedp.CSS(`[data-testid="save-labels"]`)))
	browserWait(t, ctx, "the new name", `document.querySelector('[data-testid="analysis-name"]')?.textContent === 'π0.5 renamed'`, 20*time.Second)
	if tags := browserEval[string](t, ctx, `[...document.querySelectorAll('[data-testid="tags"] li')].map(l => l.textContent).join(',')`); tags != "libero,final" {
		t.Errorf("tags after the edit: %q", tags)
	}
	// Weights only is on: no norm row, and the colour bar's handles print
	// values, not "0".
	rows := browserEval[[]string](t, ctx, `JSON.parse(document.getElementById('heatmap-llm-data').textContent).meta.y_labels`)
	if strings.Contains(strings.Join(rows, ","), "norm") || !browserEval[bool](t, ctx, `document.querySelector('[data-testid="weights-only"]').checked`) {
		t.Errorf("weights-only heatmap rows %q", rows)
	}
	ends := browserEval[[]string](t, ctx, `(() => { const o = echarts.getInstanceByDom(document.getElementById('heatmap-llm')).getOption().visualMap[0];
		return [o.formatter(o.min), o.formatter(o.max)]; })()`)
	if len(ends) != 2 || ends[0] == ends[1] || ends[1] == "0" {
		t.Errorf("colour bar handles read %q", ends)
	}
	browserDo(t, ctx, "untick weights only", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="weights-only"]`)))
	browserWait(t, ctx, "the URL to follow", `location.search.includes('weights=0')`, 10*time.Second)
	browserWait(t, ctx, "norm rows", heatmapDrawn("heatmap-llm")+` && JSON.parse(document.getElementById('heatmap-llm-data').textContent).meta.y_labels.some(l => l.startsWith('norm'))`, 10*time.Second)

	// ---- the evals page leads to the composer, not to "the overview"
	browserDo(t, ctx, "open the evals page", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id+"/evals"), jsReady)
	if href := browserEval[string](t, ctx, `document.querySelector('[data-testid="compose-link"]')?.getAttribute('href') || ''`); href != "/analyses/"+id+"/compose" {
		t.Errorf("evals page composer link %q", href)
	}
	if body := browserEval[string](t, ctx, `document.body.textContent`); strings.Contains(body, "overview's composer") {
		t.Error(`the evals page still sends people to "the overview's composer"`)
	}

	// ---- layout: names break at dots, never one letter per line
	for _, width := range []int64{1280, 1440, 1920} {
		browserDo(t, ctx, "resize", 10*time.Second, chromedp.EmulateViewport(width, 900))
		for _, page := range []struct{ url, sel string }{
			{"/", `td.name-col`},
			{"/analyses/" + id + "?sel=" + firstTensor(t, s, id), `[data-testid="table-selected"] td.name`},
			{"/analyses/" + id, `[data-testid="table-most"] td.name`},
		} {
			browserDo(t, ctx, "open "+page.url, 20*time.Second, chromedp.Navigate(s.URL+page.url), jsReady)
			narrow := browserEval[float64](t, ctx, `Math.min(...[...document.querySelectorAll(`+jsString(page.sel)+`)].map(e => e.getBoundingClientRect().width))`)
			if narrow < 150 {
				t.Errorf("%d px wide, %s: a name (%s) is %.0f px wide", width, page.url, page.sel, narrow)
			}
		}
	}
}

// createAnalysis posts a request and returns the new analysis's id.
func (s *pageServer) createAnalysis(tb testing.TB, body string) string {
	tb.Helper()
	resp, err := http.Post(s.URL+"/api/analyses", "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var created struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	return created.ID
}

// firstTensor is the name of an LLM weight of the analysis (for ?sel=).
func firstTensor(tb testing.TB, s *pageServer, id string) string {
	tb.Helper()
	resp, err := http.Get(s.URL + "/api/analyses/" + id + "/tensors?component=llm")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Tensors []struct{ VLA string } `json:"tensors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Tensors) == 0 {
		tb.Fatalf("tensors: %v", err)
	}
	return out.Tensors[0].VLA
}
