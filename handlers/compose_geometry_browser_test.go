package handlers

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The composer, on the π0.5 fixture (its SigLIP has no config, so its heads
// are a guess): the page's own preset has a SigLIP head rule, and the page
// says that rule stands on a guessed geometry and how to set it; every rule
// says which protected-layer convention N follows.
func TestComposerWarnsOnGuessedGeometryInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	s := newComposeServer(t)
	browserDo(t, ctx, "open the composer", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+s.id+"/compose"))
	browserWait(t, ctx, "the first counts",
		`document.querySelector('[data-testid="params-after"]').textContent !== '–'`, 20*time.Second)
	warnings := browserEval[string](t, ctx, `document.querySelector('[data-testid="compose-warnings"]').textContent`)
	if !strings.Contains(warnings, "rule vision.siglip.attn_head") || !strings.Contains(warnings, "is a guess") ||
		!strings.Contains(warnings, "--heads vision.siglip=") {
		t.Errorf("composer warnings %q; want the SigLIP head rule flagged as standing on a guessed geometry", warnings)
	}
	if strings.Contains(warnings, "llm.attn_head: the attention geometry") {
		t.Errorf("the Gemma geometry comes from a recognised model, yet it is flagged: %q", warnings)
	}
	notes := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid^="protected-note-"]')].map((e) => e.textContent)`)
	rules := browserEval[int](t, ctx, `document.querySelectorAll('[data-testid^="protected-"]:not([data-testid^="protected-note-"])').length`)
	if len(notes) == 0 || len(notes) != rules {
		t.Fatalf("%d protected-layer notes for %d rules", len(notes), rules)
	}
	for _, n := range notes {
		if !strings.Contains(n, "left out of N") || !strings.Contains(n, "authors' code counts them in N") {
			t.Errorf("protected-layer note %q does not state the convention", n)
		}
	}
}
