package handlers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/store"
)

// postAnalysis queues a request body and returns the new analysis's id.
func (s *pageServer) postAnalysis(tb testing.TB, body string) string {
	tb.Helper()
	resp, err := http.Post(s.URL+"/api/analyses", "application/json", bytes.NewReader([]byte(body)))
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

// An OpenVLA-shaped pair whose DINOv2 file came under a prefix nothing knows:
// the overview says how much stayed unmatched, links the tab that lists it,
// and its suggested rule is one click from a new analysis of the same sources
// with the rule added, which then leaves nothing unmatched.
func TestBrowserAlignmentBannerAppliesSuggestion(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	genOpenVLAUnder(t, s.root)
	id := s.postAnalysis(t, `{"base": ["ovla/base/prismatic.safetensors", "dinov2.=ovla/base/dinov2.safetensors",
		"model.vision_backbone.siglip_featurizer.=ovla/base/siglip.safetensors"], "vla": ["ovla/vla"]}`)
	s.waitStatus(t, id, store.StatusDone)

	browserDo(t, ctx, "open the overview", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id), jsReady)
	banner := browserEval[string](t, ctx, `document.querySelector('[data-testid="alignment-banner"]')?.textContent || ''`)
	if !strings.Contains(banner, "only in the base") || !strings.Contains(banner, `^dinov2\.=>vision_backbone.featurizer.`) {
		t.Fatalf("banner: %q", banner)
	}
	if href := browserEval[string](t, ctx, `document.querySelector('[data-testid="banner-unmatched"]').href`); !strings.Contains(href, "tab=unmatched") {
		t.Errorf("the banner links %s", href)
	}
	if txt := browserEval[string](t, ctx, `document.querySelector('[data-testid="analysis-options"] summary').textContent`); !strings.Contains(txt, "VLA's precision") {
		t.Errorf("options say %q", txt)
	}

	browserDo(t, ctx, "apply the suggestion", 20*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="apply-suggestion"]`)), jsReady)
	browserWait(t, ctx, "the prefilled form", `location.pathname === '/new' && document.querySelectorAll('[data-sources] code').length === 4`, 10*time.Second)
	prefixes := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-side="base"] [data-sources] input')].map(i => i.value)`)
	if len(prefixes) != 3 || prefixes[1] != "dinov2." || prefixes[2] != "model.vision_backbone.siglip_featurizer." {
		t.Errorf("base prefixes in the form: %q", prefixes)
	}
	rule := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-rules] input')].map(i => i.value)`)
	if len(rule) != 2 || rule[0] != `^dinov2\.` || rule[1] != "vision_backbone.featurizer." {
		t.Fatalf("rules in the form: %q", rule)
	}
	browserDo(t, ctx, "preview", 30*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="preview"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="aligned"]`)))
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid="suggestions"]').length`); n != 0 {
		t.Errorf("%d suggestion lists after applying the rule", n)
	}
	browserDo(t, ctx, "start", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="start"]`)))
	browserWait(t, ctx, "the new analysis's page", `/\/analyses\/[^/]+$/.test(location.pathname) && !location.pathname.endsWith('/`+id+`')`, 20*time.Second)
	browserWait(t, ctx, "the overview", `!!document.querySelector('[data-testid="summary"]')`, 60*time.Second)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid="alignment-banner"]').length`); n != 0 {
		t.Errorf("the re-run analysis still shows the banner")
	}
}

// The form shows every component's geometry from the preview, marks the
// guess (the fixture's SigLIP has no config), and a change is what the
// analysis uses.
func TestBrowserGeometryFromTheForm(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	browserDo(t, ctx, "open /new", 20*time.Second, chromedp.Navigate(s.URL+"/new?base=pi05/base&vla=pi05/vla/model.safetensors"), jsReady)
	browserEval[bool](t, ctx, `localStorage.clear() || true`)
	browserDo(t, ctx, "preview", 30*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="preview"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="geometry-row-vision.siglip"]`)))
	row := browserEval[string](t, ctx, `document.querySelector('[data-testid="geometry-row-vision.siglip"]').textContent`)
	llm := browserEval[string](t, ctx, `document.querySelector('[data-testid="geometry-row-llm"]').textContent`)
	if !strings.Contains(row, "guessed") || strings.Contains(llm, "guessed") {
		t.Fatalf("geometry rows: siglip %q, llm %q", row, llm)
	}
	browserDo(t, ctx, "set SigLIP's heads", 10*time.Second,
		chromedp.SetValue(chromedp.CSS(`[data-testid="geometry-heads-vision.siglip"]`), "4"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="geometry-heads-vision.siglip"]').dispatchEvent(new Event('change', {bubbles: true}))`),
		chromedp.SetValue(chromedp.CSS(`[data-testid="geometry-kv_heads-vision.siglip"]`), "4"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid="geometry-kv_heads-vision.siglip"]').dispatchEvent(new Event('change', {bubbles: true}))`),
		chromedp.Click(chromedp.CSS(`[data-testid="exact"]`)))
	browserDo(t, ctx, "start", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="start"]`)))
	id := browserSettle[string](t, ctx, "the analysis page",
		`/\/analyses\/[^/]+$/.test(location.pathname) ? location.pathname.split('/').pop() : ''`, 20*time.Second)
	s.waitStatus(t, id, store.StatusDone)
	a, err := s.db.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if g := a.Summary.Geometry["vision.siglip"]; g.Heads != 4 || g.KVHeads != 4 || g.HeadDim != 12 || !a.Request.Exact || len(a.Advice.GeometryGuessed) != 0 {
		t.Errorf("analysis: siglip %+v, exact %v, guessed %v", g, a.Request.Exact, a.Advice.GeometryGuessed)
	}
	// The job page turns into the overview by itself when the job ends.
	browserWait(t, ctx, "the overview's options", `!!document.querySelector('[data-testid="geometry-vision.siglip"]')`, 30*time.Second)
	if txt := browserEval[string](t, ctx, `document.querySelector('[data-testid="geometry-vision.siglip"]').textContent`); !strings.Contains(txt, "4 heads × 12") || !strings.Contains(txt, "set") {
		t.Errorf("overview geometry row: %q", txt)
	}
}
