package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/store"
)

// OpenVLA's Prismatic base given only its LLM and projector file
// (prismatic.safetensors, without the vision encoders' files): the overview's
// banner says that the base has no DINOv2 or SigLIP tensors and how to add
// their files, not that they are the VLA's own modules (an action expert).
func TestBrowserBannerExplainsMissingVision(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	genOpenVLAUnder(t, s.root)
	id := s.postAnalysis(t, `{"base": ["ovla/base/prismatic.safetensors"], "vla": ["ovla/vla"]}`)
	s.waitStatus(t, id, store.StatusDone)
	browserDo(t, ctx, "open the overview", 20*time.Second, chromedp.EmulateViewport(1440, 900), chromedp.Navigate(s.URL+"/analyses/"+id), jsReady)
	banner := browserEval[string](t, ctx, `(document.querySelector('[data-testid="alignment-banner"]')?.textContent || '').replace(/\s+/g, ' ')`)
	reasons := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid="alignment-banner"] [data-testid="unmatched-reasons"] li')].map(l => l.textContent.trim())`)
	if !strings.Contains(banner, "tensors were not compared") || !strings.Contains(banner, "0 only in the base") {
		t.Errorf("banner %q", banner)
	}
	if len(reasons) != 1 {
		t.Fatalf("reasons %q, want one", reasons)
	}
	for _, want := range []string{"the base has no vision.dinov2 / vision.siglip tensors", "add the vision encoders' files",
		"--base vision_backbone.featurizer.=FILE", "--base vision_backbone.fused_featurizer.=FILE"} {
		if !strings.Contains(reasons[0], want) {
			t.Errorf("the banner's reason %q lacks %q", reasons[0], want)
		}
	}
	if strings.Contains(banner, "action expert") || strings.Contains(banner, "own modules") {
		t.Errorf("the banner blames the VLA's own modules: %q", banner)
	}
	// The reason is visible, inside the banner, at the page's width.
	if w := browserEval[float64](t, ctx, `(() => { const b = document.querySelector('[data-testid="alignment-banner"]'), l = b.querySelector('[data-testid="unmatched-reasons"]');
		const r = l.getBoundingClientRect(), o = b.getBoundingClientRect(); return l.offsetParent && r.height > 0 && r.right <= o.right + 0.5 ? r.width : 0; })()`); w == 0 {
		t.Error("the reason is hidden or runs out of the banner")
	}
}
