package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/analysis/prune"
	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
)

// newComposeServer is the recipe test server: the real routes, under the
// dashboard's strict Content-Security-Policy, so a composer page that needs
// an inline script fails here.
func newComposeServer(t *testing.T) *recipeServer { return newRecipeServer(t) }

func TestComposePages(t *testing.T) {
	s := newComposeServer(t)
	queued, _ := s.db.CreateAnalysis(context.Background(), store.AnalysisRequest{Base: []string{"x"}, VLA: []string{"y"}})
	var a, b store.Recipe
	s.call(t, "POST", "/api/analyses/"+s.id+"/recipes", `{"name": "light", "recipe": {"preset": "pi05-light"}}`, &a)
	s.call(t, "POST", "/api/analyses/"+s.id+"/recipes", `{"name": "aggressive", "recipe": {"preset": "pi05-aggressive"}}`, &b)
	for _, c := range []struct {
		name, path string
		status     int
		expect     []string
	}{
		{"composer", "/analyses/" + s.id + "/compose", 200, []string{`id="compose-data"`, `"pi05-light"`, `data-testid="export-masked"`, `"llm.ffn_channel"`}},
		{"edit saved", fmt.Sprintf("/analyses/%s/compose?recipe=%d", s.id, a.ID), 200, []string{fmt.Sprintf(`"recipe_id":%d`, a.ID), `value="light"`}},
		{"saved of another analysis", fmt.Sprintf("/analyses/%s/compose?recipe=%d", queued.ID, a.ID), 409, []string{"Not ready"}},
		{"unknown saved", fmt.Sprintf("/analyses/%s/compose?recipe=999", s.id), 404, []string{"no saved recipe 999"}},
		{"unknown analysis", "/analyses/nope/compose", 404, []string{"Not found"}},
		{"compare", fmt.Sprintf("/recipes/compare?a=%d&b=%d", a.ID, b.ID), 200, []string{"llm.ffn_channel", "Jaccard", `data-testid="compare-delta">−`}},
		{"compare without ids", "/recipes/compare", 400, []string{"two saved recipes"}},
		{"compare unknown", fmt.Sprintf("/recipes/compare?a=%d&b=999", a.ID), 404, []string{"Not found"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Get(s.URL + c.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d", resp.StatusCode, c.status)
			}
			for _, e := range c.expect {
				if !strings.Contains(string(body), e) {
					t.Errorf("page lacks %q", e)
				}
			}
			if strings.Contains(string(body), "<script>") || strings.Contains(string(body), " onclick=") {
				t.Error("inline script or handler in the page")
			}
		})
	}
}

// TestComposerInBrowser opens the composer on the fixture analysis, moves a
// ratio slider, sees the parameter count change, saves, and downloads every
// export kind, both of the saved recipe and of the recipe on the page.
func TestComposerInBrowser(t *testing.T) {
	bctx := newBrowser(t) // browser_test.go: skips without chromium, fails under CI=true
	s := newComposeServer(t)
	if err := chromedp.Do(bctx, chromedp.Navigate(s.URL+"/analyses/"+s.id+"/compose")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()

	after := func() int64 {
		t.Helper()
		text, err := chromedp.Run(ctx, chromedp.Poll[string](
			`(() => { const t = document.querySelector('[data-testid="params-after"]').textContent; return t !== '–' && t; })()`))
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.ReplaceAll(strings.Fields(text)[0], ",", ""), 10, 64)
		if err != nil {
			t.Fatalf("params after %q: %v", text, err)
		}
		return n
	}
	first := after()

	// Rule 1 of the π0.5 preset the page starts from is the LLM FFN channels.
	module, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="module-1"]').value`))
	if err != nil || module != "llm.ffn_channel" {
		t.Fatalf("rule 1 is %q (%v), want llm.ffn_channel", module, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => {
		const r = document.querySelector('[data-testid="ratio-1"]');
		r.value = '0.6';
		r.dispatchEvent(new Event('input', {bubbles: true}));
		return true; })()`)); err != nil {
		t.Fatal(err)
	}
	var moved int64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if moved = after(); moved != first {
			break
		}
	}
	if moved >= first {
		t.Fatalf("params after %d → %d: pruning more LLM FFN channels must lower the count", first, moved)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('chart-components').dataset.drawn === '1' &&
		document.getElementById('chart-layers').dataset.drawn === '1'`)); err != nil {
		t.Fatalf("charts not drawn: %v", err)
	}
	// The unit map is the server's chart (web/viz) of the module the picker
	// names; another choice is drawn from a new answer.
	mods, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelector('[data-testid="mask-module"]').options).map((o) => o.value)`))
	if err != nil || len(mods) < 2 {
		t.Fatalf("mask modules %v (%v): want the preset's modules", mods, err)
	}
	maskOf := `(() => { const el = document.getElementById('chart-mask'); const c = el.dataset.drawn === '1' && echarts.getInstanceByDom(el);
		const s = c && c.getOption().series[0]; return s && s.data.length > 0 ? s.name : ''; })()`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](maskOf+` === 'Pruned units of `+mods[0]+`'`)); err != nil {
		t.Fatalf("mask chart of %s: %v", mods[0], err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.querySelector('[data-testid="mask-module"]');
		s.value = '`+mods[1]+`'; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](maskOf+` === 'Pruned units of `+mods[1]+`'`)); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](maskOf))
		t.Fatalf("mask chart after choosing %s shows %q: %v", mods[1], got, err)
	}

	// The page's own recipe: every export form posts it.
	type dl struct {
		Status      int    `json:"status"`
		Disposition string `json:"disposition"`
		Bytes       int    `json:"bytes"`
	}
	fetchAll := func(js string) map[string]dl {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]dl](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	check := func(what string, got map[string]dl) {
		t.Helper()
		for _, kind := range prune.ExportKindNames(false) {
			d, ok := got[kind]
			if !ok || d.Status != 200 || !strings.HasPrefix(d.Disposition, "attachment; filename=") || d.Bytes == 0 {
				t.Errorf("%s export %s: %+v", what, kind, d)
			}
		}
	}
	check("inline", fetchAll(`(async () => {
		const out = {};
		for (const f of document.querySelectorAll('form.export')) {
			const r = await fetch(f.action, {method: 'POST', body: new URLSearchParams(new FormData(f))});
			out[f.dataset.kind] = {status: r.status, disposition: r.headers.get('content-disposition') || '', bytes: (await r.arrayBuffer()).byteLength};
		}
		return out; })()`))

	// Save, then download the saved recipe's exports from the links the page shows.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`[data-testid="recipe-name"]`), "browser test"),
		chromedp.Click(chromedp.CSS(`[data-testid="save"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!!document.querySelector('[data-testid="export-link-sliced"]')`)); err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid="save-status"]').textContent`))
		t.Fatalf("no export links after saving (%q): %v", status, err)
	}
	check("saved", fetchAll(`(async () => {
		const out = {};
		for (const a of document.querySelectorAll('[data-testid^="export-link-"]')) {
			const r = await fetch(a.href);
			out[a.textContent] = {status: r.status, disposition: r.headers.get('content-disposition') || '', bytes: (await r.arrayBuffer()).byteLength};
		}
		return out; })()`))

	list, err := s.db.ListRecipes(context.Background(), s.id)
	if err != nil || len(list) != 1 || list[0].Name != "browser test" || !strings.Contains(string(list[0].Recipe), `"ratio":0.6`) {
		t.Fatalf("saved recipes %+v (%v): want the page's recipe, with the moved slider", list, err)
	}

	// Saved, the page is that recipe's editor (its URL from the page's
	// pattern); saving again saves over it, and Duplicate opens the copy's.
	here := `location.pathname + location.search`
	if loc, want := browserEval[string](t, ctx, here), web.ComposeURL(s.id, list[0].ID); loc != want {
		t.Errorf("after saving the page is at %s, want %s", loc, want)
	}
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`[data-testid="recipe-name"]`), "browser test, renamed"),
		chromedp.Click(chromedp.CSS(`[data-testid="save"]`)),
	); err != nil {
		t.Fatal(err)
	}
	browserWait(t, ctx, "saved over", `document.querySelector('[data-testid="save-status"]').textContent.includes('renamed')`, 20*time.Second)
	if again, err := s.db.ListRecipes(context.Background(), s.id); err != nil || len(again) != 1 || again[0].ID != list[0].ID || again[0].Name != "browser test, renamed" {
		t.Fatalf("after saving again: %+v (%v), want recipe %d renamed", again, err, list[0].ID)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`[data-testid="duplicate"]`))); err != nil {
		t.Fatal(err)
	}
	browserWait(t, ctx, "the copy's editor", `location.search !== '?recipe=`+strconv.FormatInt(list[0].ID, 10)+`' && document.readyState === 'complete'`, 20*time.Second)
	both, err := s.db.ListRecipes(context.Background(), s.id)
	if err != nil || len(both) != 2 {
		t.Fatalf("after Duplicate: %+v (%v), want two recipes", both, err)
	}
	copyID := both[0].ID + both[1].ID - list[0].ID
	if loc, want := browserEval[string](t, ctx, here), web.ComposeURL(s.id, copyID); loc != want {
		t.Errorf("after Duplicate the page is at %s, want the copy's editor %s", loc, want)
	}
}
