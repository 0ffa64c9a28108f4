package handlers

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserPickFromRemoteRoots: a researcher picks both checkpoints from
// the server's s3:// root in the new-analysis form (the sharded base as a
// folder, marked as a checkpoint; the VLA as one object), previews the
// alignment from the objects' headers, starts, and the overview says both
// came from S3, with the bucket, the key and the objects' ETags; the home list
// shows the badge. Then a pick from the hf:// root, through a named repository.
func TestBrowserPickFromRemoteRoots(t *testing.T) {
	ctx := newBrowser(t)
	l, _, _ := remoteRootsServer(t)
	l.start()
	roots := l.srv.cfg.Roots
	s3root := slices.Index(roots, "s3://models/runs")

	browserDo(t, ctx, "open /new", 20*time.Second, chromedp.Navigate(l.URL+"/new"), jsReady)
	browserEval[bool](t, ctx, `localStorage.clear() || true`)
	browserDo(t, ctx, "reload /new", 20*time.Second, chromedp.Reload(), jsReady)

	// pick opens the picker of a side on the S3 root and walks into folder.
	pick := func(side, folder string) {
		t.Helper()
		sec := `[data-side="` + side + `"] `
		browserDo(t, ctx, "open the "+side+" picker", 10*time.Second, chromedp.Click(chromedp.CSS(sec+`[data-browse]`)),
			chromedp.WaitVisible(chromedp.CSS(`[data-testid="picker-root-`+side+`"]`)))
		browserEval[bool](t, ctx, `(() => { const s = document.querySelector('[data-testid="picker-root-`+side+`"]');
			s.value = '`+itoa(s3root)+`'; s.dispatchEvent(new Event('change')); return true; })()`)
		for _, p := range []string{"pi05", folder} {
			entry := sec + `li[data-entry="` + p + `"]`
			browserWait(t, ctx, p+" listed in the "+side+" picker", `!!document.querySelector('`+entry+`')`, 20*time.Second)
			browserDo(t, ctx, "open "+p, 10*time.Second, chromedp.Click(chromedp.CSS(entry+` button.link`)))
		}
	}
	pick("base", "pi05/base")
	// The base folder holds the index: the picker says it is one checkpoint.
	browserWait(t, ctx, "the base folder marked", `[...document.querySelectorAll('[data-side="base"] .browser-head .meta')].some(m => m.textContent === 'sharded checkpoint')`, 20*time.Second)
	browserDo(t, ctx, "add the base folder", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-side="base"] [data-testid="pick-folder"]`)))
	pick("vla", "pi05/vla")
	obj := `[data-side="vla"] li[data-entry="pi05/vla/model.safetensors"]`
	browserWait(t, ctx, "the VLA object listed", `!!document.querySelector('`+obj+`')`, 20*time.Second)
	if meta := browserEval[string](t, ctx, `document.querySelector('`+obj+` .meta').textContent`); !strings.HasPrefix(meta, "safetensors · ") {
		t.Errorf("the VLA object is described as %q", meta)
	}
	browserDo(t, ctx, "add the VLA object", 10*time.Second, chromedp.Click(chromedp.CSS(obj+` button.small`)))

	sources := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-sources] code')].map(c => c.textContent)`)
	if !slices.Equal(sources, []string{"s3://models/runs/pi05/base", "s3://models/runs/pi05/vla/model.safetensors"}) {
		t.Fatalf("sources picked: %q", sources)
	}
	browserDo(t, ctx, "preview", 30*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="preview"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="aligned"]`)))
	if txt := browserEval[string](t, ctx, `document.querySelector('[data-testid="aligned"]').textContent`); !strings.HasPrefix(txt, "68 tensors align") {
		t.Errorf("preview says %q", txt)
	}
	browserDo(t, ctx, "start", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="start"]`)))
	// The job page turns into the overview when the analysis is done; read
	// the origins in the same evaluation that sees them.
	got := browserSettle[string](t, ctx, "the overview's origins", `(() => {
		const base = document.querySelector('[data-testid="origin-base"]'), vla = document.querySelector('[data-testid="origin-vla"]');
		// The job page shows origins too, before anything is read: wait for the overview's.
		if (!base || !vla || !document.querySelector('[data-testid="view"]')) return '';
		const t = (el, sel) => [...el.querySelectorAll(sel)].map(e => e.textContent).join(',');
		return [t(base, '.origin'), t(base, '[data-testid="origin-bucket"]'), t(base, '[data-testid="origin-key"]'), t(base, '[data-testid="origin-etag"]').split(',').length,
			t(vla, '.origin'), t(vla, '[data-testid="origin-key"]'), t(vla, '[data-testid="origin-etag"]').length > 0].join('|'); })()`, 90*time.Second)
	if want := "S3|models|runs/pi05/base|4|S3|runs/pi05/vla/model.safetensors|true"; got != want {
		t.Errorf("overview origins %q; want %q (badge|bucket|key|ETags of the 4 shards|badge|key|an ETag)", got, want)
	}

	browserDo(t, ctx, "open the home page", 20*time.Second, chromedp.Navigate(l.URL+"/"), jsReady)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('#analyses-list [data-testid="origin-s3"]').length`); n != 2 {
		t.Errorf("%d S3 badges on the home list; want 2 (base and VLA)", n)
	}

	// The hf://lab root cannot list the organisation: the picker asks for a
	// repository, then lists it at its commit and adds an hf:// source.
	browserDo(t, ctx, "open /new again", 20*time.Second, chromedp.Navigate(l.URL+"/new"), jsReady)
	browserDo(t, ctx, "open the VLA picker", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-side="vla"] [data-browse]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="picker-root-vla"]`)))
	browserEval[bool](t, ctx, `(() => { const s = document.querySelector('[data-testid="picker-root-vla"]');
		s.value = '`+itoa(slices.Index(roots, "hf://lab"))+`'; s.dispatchEvent(new Event('change')); return true; })()`)
	browserDo(t, ctx, "name the repository", 20*time.Second, chromedp.WaitVisible(chromedp.CSS(`[data-testid="picker-repo-vla"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="picker-repo-vla"]`), "pi05\r"))
	browserWait(t, ctx, "the repository listed", `!!document.querySelector('[data-side="vla"] li[data-entry="pi05/vla"]')`, 20*time.Second)
	if meta := browserEval[string](t, ctx, `document.querySelector('[data-side="vla"] li[data-entry="pi05/base"] .meta').textContent`); meta != "folder · sharded checkpoint" {
		t.Errorf("the Hub's base folder is described as %q", meta)
	}
	browserDo(t, ctx, "open vla/", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-side="vla"] li[data-entry="pi05/vla"] button.link`)))
	hubObj := `[data-side="vla"] li[data-entry="pi05/vla/model.safetensors"]`
	browserWait(t, ctx, "the Hub file listed", `!!document.querySelector('`+hubObj+`')`, 20*time.Second)
	browserDo(t, ctx, "add the Hub file", 10*time.Second, chromedp.Click(chromedp.CSS(hubObj+` button.small`)))
	if src := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid="sources-vla"] code')].map(c => c.textContent)`); !slices.Equal(src, []string{"hf://lab/pi05/vla/model.safetensors"}) {
		t.Errorf("the VLA's sources after a Hub pick: %q", src)
	}
}
