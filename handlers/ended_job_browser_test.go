package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/store"
	"github.com/deltascope/deltascope/web"
	"github.com/deltascope/deltascope/web/viz"
)

// endedJobPage reads what a failed or cancelled analysis's page shows.
type endedJobPage struct {
	Status, Error, ReadSoFar, Next, Retry, Body string
	Reasons                                     []string
	Progress                                    int // progress bars and blocks
}

func readEndedJobPage(t *testing.T, ctx context.Context, url string) endedJobPage {
	t.Helper()
	browserDo(t, ctx, "open "+url, 20*time.Second, chromedp.Navigate(url), jsReady)
	var p endedJobPage
	raw := browserEval[string](t, ctx, `JSON.stringify((() => { const q = (s) => document.querySelector(s), text = (s) => q(s) ? q(s).textContent.replace(/\s+/g, ' ').trim() : '';
		const err = q('[data-field="error"]');
		return {Status: text('[data-testid="status"]'), Error: err && !err.hidden ? err.textContent.replace(/\s+/g, ' ').trim() : '',
			ReadSoFar: text('[data-testid="read-so-far"]'), Next: text('[data-testid="next-steps"]'),
			Retry: q('[data-testid="retry"]') ? q('[data-testid="retry"]').getAttribute('href') : '',
			Body: document.querySelector('main, body').innerText,
			Reasons: [...document.querySelectorAll('[data-testid="failure-reasons"] li')].map(l => l.textContent.trim()),
			Progress: document.querySelectorAll('progress, [data-testid="progress"], [data-field="bytes"], [data-field="rate"]').length}; })())`)
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	return p
}

// A failed or cancelled analysis's page shows why it ended and what to do
// next, never a progress block of zeros ("Read 0 B of 0 B", "Rate –"): an
// analysis in which nothing aligned gives its reason per component (the
// LLM, SigLIP and projector missing from the base, DINOv2 named
// differently), the rule that fixes the latter and a link that analyses the
// same sources again; one that failed while reading says how far it got; one
// cancelled from its own page (which showed its progress while it ran) says
// when it was cancelled and offers the same sources again.
func TestBrowserEndedJobPages(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	genOpenVLAUnder(t, s.root)
	bg := context.Background()
	browserDo(t, ctx, "1440×900", 10*time.Second, chromedp.EmulateViewport(1440, 900))

	// ---- nothing aligned, from a real run
	failed := s.postAnalysis(t, `{"base": ["dinov2.=ovla/base/dinov2.safetensors"], "vla": ["ovla/vla"]}`)
	s.waitStatus(t, failed, store.StatusFailed)
	// The API's advice carries the same groups.
	var got struct {
		Advice struct {
			Unmatched []struct{ Side, Component, Cause string } `json:"unmatched"`
		} `json:"advice"`
	}
	if code, b := doJSON(t, "GET", s.URL+"/api/analyses/"+failed, ""); code != http.StatusOK || json.Unmarshal(b, &got) != nil {
		t.Fatalf("GET the analysis: %d %s", code, b)
	}
	causes := map[string]string{}
	for _, g := range got.Advice.Unmatched {
		causes[g.Side+" "+g.Component] = g.Cause
	}
	if causes["vla vision.dinov2"] != "renamed" || causes["vla llm"] != "missing" || causes["vla vision.siglip"] != "missing" {
		t.Errorf("advice.unmatched %+v", got.Advice.Unmatched)
	}
	p := readEndedJobPage(t, ctx, s.URL+"/analyses/"+failed)
	if p.Status != "failed" || p.Progress != 0 || strings.Contains(p.Body, "0 B of 0 B") || strings.Contains(p.Body, "Time left") {
		t.Errorf("the failed page shows a progress block: %+v", p)
	}
	if !strings.Contains(p.Error, "no tensor aligned between the base") || p.ReadSoFar != "" {
		t.Errorf("its reason %q, read so far %q", p.Error, p.ReadSoFar)
	}
	if len(p.Reasons) != 2 || !strings.HasPrefix(p.Reasons[0], "the base has no embed / llm / lm_head / projector / vision.siglip tensors") ||
		!strings.Contains(p.Reasons[0], "--base language_model.=FILE") ||
		!strings.HasPrefix(p.Reasons[1], "the base names its vision.dinov2 tensors differently") || !strings.Contains(p.Reasons[1], `--map '^dinov2\.=>vision_backbone.featurizer.'`) {
		t.Errorf("its reasons %q", p.Reasons)
	}
	for _, r := range p.Reasons {
		if strings.Count(p.Error, r) != 1 {
			t.Errorf("reason %q is given %d times", r, strings.Count(p.Error, r))
		}
	}
	if !strings.Contains(p.Next, "What to do next") || !strings.HasPrefix(p.Retry, "/new?") || !strings.Contains(p.Retry, "dinov2.%3D") {
		t.Errorf("what to do next: %q, retry %q", p.Next, p.Retry)
	}
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid="failed-suggestions"] [data-testid="apply-suggestion"]').length`); n != 1 {
		t.Errorf("%d suggested rules one click away, want 1", n)
	}
	// The link opens the form with the same sources.
	// The click navigates: read the form in the evaluation that sees it ready
	// (a read right after the click can land on the page being left).
	browserDo(t, ctx, "analyse again", 20*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="retry"]`)))
	if src := browserSettle[string](t, ctx, "the new-analysis form", `(() => {
		const e = document.querySelector('html[data-js="ready"] [data-side="base"]');
		return location.pathname === '/new' && e ? e.textContent : ''; })()`, 20*time.Second); !strings.Contains(src, "ovla/base/dinov2.safetensors") {
		t.Errorf("the form after 'analyse again' holds base %q", src)
	}

	// ---- failed while reading: as the runner leaves it
	req := store.AnalysisRequest{Base: []string{filepath.Join(s.root, "ovla", "base", "prismatic.safetensors")}, VLA: []string{filepath.Join(s.root, "ovla", "vla")}}
	broken, err := s.db.CreateRunning(bg, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.UpdateProgress(bg, broken.ID, 3<<20, 8<<20, "language_model.model.layers.1.mlp.up_proj.weight"); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Fail(bg, broken.ID, "read model-00002-of-00003.safetensors: unexpected EOF"); err != nil {
		t.Fatal(err)
	}
	p = readEndedJobPage(t, ctx, s.URL+"/analyses/"+broken.ID)
	if p.Status != "failed" || p.Progress != 0 || !strings.Contains(p.Error, "unexpected EOF") || len(p.Reasons) != 0 {
		t.Errorf("a failure while reading: %+v", p)
	}
	if want := "It had read " + viz.FormatBytes(3<<20) + " of " + viz.FormatBytes(8<<20) + " (37.5 %) when it failed."; p.ReadSoFar != want {
		t.Errorf("how far it got: %q", p.ReadSoFar)
	}
	if !strings.Contains(p.Next, "What to do next") || p.Retry != web.NewAnalysisURL(req) {
		t.Errorf("what to do next: %q, retry %q", p.Next, p.Retry)
	}

	// ---- running, then cancelled from its own page
	running, err := s.db.CreateRunning(bg, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.UpdateProgress(bg, running.ID, 1<<20, 4<<20, "language_model.model.layers.0.mlp.up_proj.weight"); err != nil {
		t.Fatal(err)
	}
	browserDo(t, ctx, "open the running analysis", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+running.ID), jsReady)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid="progress"] [data-field="bytes"]').length`); n != 1 {
		t.Error("a running analysis shows no progress")
	}
	browserDo(t, ctx, "cancel it", 20*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="cancel"]`)), jsReady)
	browserWait(t, ctx, "the cancelled page", `document.querySelector('[data-testid="status"]')?.textContent === 'cancelled'`, 20*time.Second)
	p = readEndedJobPage(t, ctx, s.URL+"/analyses/"+running.ID)
	if p.Status != "cancelled" || p.Progress != 0 || p.Error != "" || strings.Contains(p.Body, "Time left") {
		t.Errorf("the cancelled page: %+v", p)
	}
	if !strings.Contains(p.Next, "This analysis was cancelled after reading "+viz.FormatBytes(1<<20)+" of "+viz.FormatBytes(4<<20)+" (25.0 %).") || p.Retry != web.NewAnalysisURL(req) {
		t.Errorf("the cancelled page says %q, retry %q", p.Next, p.Retry)
	}
}
