package handlers

import (
	"archive/tar"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Choosing a preset loads its name and note with its rules, so the exports
// carry its name (file names and widths.json's "recipe"); the picker shows
// the preset the page starts from; an error (an OpenVLA preset on this π0.5
// analysis) says the module is missing and clears the previous counts.
func TestComposerPresetsInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	s := newComposeServer(t)
	browserDo(t, ctx, "open the composer", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+s.id+"/compose"))
	counted := `(() => { const t = document.querySelector('[data-testid="params-after"]').textContent; return t !== '–'; })()`
	browserWait(t, ctx, "the first counts", counted, 20*time.Second)
	if got := browserEval[string](t, ctx, `document.querySelector('[data-testid="preset-select"]').value`); got != "pi05-light" {
		t.Errorf("the picker shows %q; the page starts from pi05-light", got)
	}

	choose := func(preset string) {
		t.Helper()
		browserEval[bool](t, ctx, `(() => { const s = document.querySelector('[data-testid="preset-select"]');
			s.value = `+jsString(preset)+`; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`)
	}
	choose("pi05-moderate")
	name := browserEval[string](t, ctx, `document.querySelector('[data-testid="recipe-name"]').value`)
	note := browserEval[string](t, ctx, `document.querySelector('[data-testid="recipe-note"]').value`)
	if name != "pi05-moderate" || !strings.Contains(note, "moderate") {
		t.Errorf("after choosing pi05-moderate: name %q, note %q", name, note)
	}
	browserWait(t, ctx, "counts of the new preset", counted, 20*time.Second)

	// The sliced export of the page's recipe, as its form posts it.
	recipe := browserEval[string](t, ctx, `document.querySelector('form.export[data-kind="sliced"] input[name="recipe"]').value`)
	action := browserEval[string](t, ctx, `document.querySelector('form.export[data-kind="sliced"]').action`)
	resp, err := http.PostForm(action, url.Values{"recipe": {recipe}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); resp.StatusCode != 200 || !strings.Contains(cd, "pi05-moderate") {
		t.Fatalf("sliced export: %d, %q; want a file named for pi05-moderate", resp.StatusCode, cd)
	}
	widthsRecipe := ""
	tr := tar.NewReader(resp.Body)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, "widths.json") {
			var w struct {
				Recipe string `json:"recipe"`
			}
			if err := json.NewDecoder(tr).Decode(&w); err != nil {
				t.Fatal(err)
			}
			widthsRecipe = w.Recipe
		}
	}
	if widthsRecipe != "pi05-moderate" {
		t.Errorf(`widths.json says "recipe": %q, want pi05-moderate`, widthsRecipe)
	}

	// A preset for another model: the reason, and no stale figures beside it.
	choose("openvla-light")
	browserWait(t, ctx, "the error", `!document.querySelector('[data-testid="compose-error"]').hidden`, 20*time.Second)
	msg := browserEval[string](t, ctx, `document.querySelector('[data-testid="compose-error"]').textContent`)
	if !strings.Contains(msg, "has no vision.dinov2 module") || strings.Contains(msg, "base counterpart") {
		t.Errorf("error %q; want it to say the analysis has no such module", msg)
	}
	for _, id := range []string{"params-before", "params-after", "params-pruned"} {
		if got := browserEval[string](t, ctx, `document.querySelector('[data-testid="`+id+`"]').textContent`); got != "–" {
			t.Errorf("%s still shows %q beside the error", id, got)
		}
	}
	if n := browserEval[int](t, ctx, `echarts.getInstanceByDom(document.getElementById('chart-components')).getOption().series?.length || 0`); n != 0 {
		t.Errorf("the component chart still shows %d series beside the error", n)
	}
	// Back to a preset that fits: the error goes, the counts come back.
	choose("pi05-light")
	browserWait(t, ctx, "counts again", counted+` && document.querySelector('[data-testid="compose-error"]').hidden`, 20*time.Second)
}
