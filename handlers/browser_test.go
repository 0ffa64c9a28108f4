package handlers

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds the browser for the browser tests: $CHROMIUM, else Debian's
// /usr/bin/chromium. Without one the tests skip, except in CI (CI=true),
// where .ci/run installs it and a missing browser is a broken setup.
func chromiumPath(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("no chromium found (set CHROMIUM or install Debian's chromium)")
	}
	tb.Skip("no chromium found (set CHROMIUM or install Debian's chromium)")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and returns a
// tab context. The first Run allocates the browser; it lives until cleanup.
// extra adds flags (a host-resolver rule, say).
func newBrowser(tb testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	tb.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(tb)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	tb.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser now
		tb.Fatal(err)
	}
	return ctx
}

// browserDo runs actions with a deadline, failing the test on error.
func browserDo(tb testing.TB, ctx context.Context, what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, steps...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// browserEval evaluates expr and decodes its value (awaiting a promise).
func browserEval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// browserWait evaluates the boolean expr until it holds. Unlike chromedp.Poll it
// survives navigations (the job page reloads itself when the job ends).
func browserWait(tb testing.TB, ctx context.Context, what, expr string, d time.Duration) {
	tb.Helper()
	browserSettle[bool](tb, ctx, what, expr, d)
}

// browserSettle evaluates expr until it yields a non-zero value and returns
// it, surviving navigations in between: reading the page right after a wait
// can land in the middle of the next navigation ("Inspected target navigated
// or closed"), so a value that must come from a page that may be moving on is
// read in the same evaluation that sees the page is the right one.
func browserSettle[T comparable](tb testing.TB, ctx context.Context, what, expr string, d time.Duration) T {
	tb.Helper()
	deadline := time.Now().Add(d)
	var last error
	var zero T
	for time.Now().Before(deadline) {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
		cancel()
		if err == nil && v != zero {
			return v
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	tb.Fatalf("waiting for %s (%s) at %s: timed out (last error %v)", what, expr, loc, last)
	return zero
}

// heatmapDrawn holds once the chart with this DOM id has drawn its canvas and
// holds data: what a user needs to read and click it.
func heatmapDrawn(id string) string {
	return `(() => { const el = document.getElementById(` + jsString(id) + `);
		if (!el || el.dataset.drawn !== '1' || !el.querySelector('canvas')) return false;
		const c = echarts.getInstanceByDom(el); return !!c && c.getOption().series[0].data.length > 0; })()`
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// clickLinkedCell clicks, with the mouse, the centre of the first cell of a
// heatmap that links to a tensor whose name contains part.
func clickLinkedCell(tb testing.TB, ctx context.Context, id, part string) {
	tb.Helper()
	browserDo(tb, ctx, "scroll to the heatmap", 10*time.Second, chromedp.ScrollIntoView(chromedp.CSS("#"+id)))
	pt := browserEval[[]float64](tb, ctx, `(() => { const el = document.getElementById(`+jsString(id)+`);
		const c = echarts.getInstanceByDom(el); const spec = JSON.parse(document.getElementById(el.dataset.chart).textContent);
		const d = c.getOption().series[0].data.find(d => (spec.meta.names[d.value[0] + ',' + d.value[1]] || '').includes(`+jsString(part)+`));
		const p = c.convertToPixel({seriesIndex: 0}, [d.value[0], d.value[1]]); const r = el.getBoundingClientRect();
		return [r.left + p[0], r.top + p[1]]; })()`)
	browserDo(tb, ctx, "click a heatmap cell", 10*time.Second, chromedp.MouseClickXY(pt[0], pt[1]))
}

// The whole path of a researcher: upload both checkpoints through the page,
// preview, start, watch the job finish, read the heatmap, click a cell, reach
// the tensor page, download a table.
func TestBrowserUploadAnalyzeExplore(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	fixtures, err := filepath.Abs(filepath.Join(pageFixtures, "pi05"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := filepath.Glob(filepath.Join(fixtures, "base", "*"))
	vla := []string{filepath.Join(fixtures, "vla", "model.safetensors")}

	browserDo(t, ctx, "open /new", 20*time.Second, chromedp.Navigate(s.URL+"/new"),
		chromedp.WaitReady(chromedp.CSS(`[data-testid="files-base"]`)))
	// A stale state from an earlier run would add sources: start clean.
	browserEval[bool](t, ctx, `localStorage.clear() || true`)
	browserDo(t, ctx, "reload /new", 20*time.Second, chromedp.Reload(), jsReady)
	browserDo(t, ctx, "choose base files", 20*time.Second, chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="files-base"]`), base))
	browserWait(t, ctx, "base uploads", `document.querySelectorAll('[data-side="base"] [data-uploads] li[data-done]').length === `+itoa(len(base)), 60*time.Second)
	browserDo(t, ctx, "choose the VLA file", 20*time.Second, chromedp.SetUploadFiles(chromedp.CSS(`[data-testid="files-vla"]`), vla))
	browserWait(t, ctx, "VLA upload", `document.querySelectorAll('[data-side="vla"] [data-uploads] li[data-done]').length === 1`, 60*time.Second)
	// The shards and their index make one sharded source; the VLA file one.
	sources := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-sources] code')].map(c => c.textContent)`)
	if len(sources) != 2 || !strings.HasSuffix(sources[0], "/base") || !strings.HasSuffix(sources[1], "/vla/model.safetensors") {
		t.Fatalf("sources after upload: %q", sources)
	}

	browserDo(t, ctx, "preview", 30*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="preview"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="aligned"]`)))
	if txt := browserEval[string](t, ctx, `document.querySelector('[data-testid="aligned"]').textContent`); !strings.HasPrefix(txt, "68 tensors align") {
		t.Errorf("preview says %q", txt)
	}
	browserDo(t, ctx, "start", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="start"]`)))
	browserWait(t, ctx, "the job page or the overview", `/\/analyses\/[^/]+$/.test(location.pathname)`, 20*time.Second)
	// The job page follows the job and turns into the overview when it ends.
	browserWait(t, ctx, "the overview's heatmap", heatmapDrawn("heatmap-llm"), 90*time.Second)
	cells := browserEval[int](t, ctx, `echarts.getInstanceByDom(document.getElementById('heatmap-llm')).getOption().series[0].data.length`)
	if cells < 10 {
		t.Errorf("llm heatmap has %d cells", cells)
	}

	overview := browserEval[string](t, ctx, `location.href`)
	clickLinkedCell(t, ctx, "heatmap-llm", "mlp.up_proj")
	browserWait(t, ctx, "the tensor page", `!!document.querySelector('[data-testid="tensor-name"]')`, 20*time.Second)
	name := browserEval[string](t, ctx, `document.querySelector('[data-testid="tensor-name"]').textContent`)
	if !strings.Contains(name, "language_model.layers.") || !strings.HasSuffix(name, "mlp.up_proj.weight") {
		t.Errorf("the clicked cell led to %q", name)
	}
	browserWait(t, ctx, "the channel chart", `document.getElementById('chart-channels')?.dataset.drawn === '1'`, 20*time.Second)

	csv := browserEval[string](t, ctx, `fetch(document.querySelector('[data-testid="csv-top"]').href).then(r => r.text())`)
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if lines[0] != "row,delta_norm,base_norm,rel_delta" && lines[0] != "column,delta_norm,base_norm,rel_delta" || len(lines) != 11 {
		t.Errorf("downloaded CSV:\n%s", csv)
	}

	// The way back keeps the view and marks the tensor as selected.
	browserDo(t, ctx, "back", 20*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="back"]`)))
	browserWait(t, ctx, "the selected tensor", `!!document.querySelector('[data-testid="table-selected"]')`, 20*time.Second)
	if back := browserEval[string](t, ctx, `location.href`); !strings.HasPrefix(back, strings.SplitN(overview, "?", 2)[0]) {
		t.Errorf("back at %s", back)
	}
}

// Changing a control swaps the view through htmx, keeps the URL a permalink
// and redraws the heatmaps.
func TestBrowserControlsKeepPermalink(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	id := s.analyzeFixture(t)
	browserDo(t, ctx, "open the overview", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id))
	browserWait(t, ctx, "heatmap", heatmapDrawn("heatmap-llm"), 20*time.Second)
	browserDo(t, ctx, "pick a metric", 10*time.Second, chromedp.SetValue(chromedp.CSS(`select[name="metric"]`), "cos"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('select[name="metric"]').dispatchEvent(new Event('change', {bubbles: true}))`))
	browserWait(t, ctx, "the URL to follow", `location.search.includes('metric=cos')`, 10*time.Second)
	browserWait(t, ctx, "the redrawn heatmap", heatmapDrawn("heatmap-llm")+` && JSON.parse(document.getElementById('heatmap-llm-data').textContent).meta.value === '1 − cosine'`, 10*time.Second)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('[data-chart]').length`); n < 3 {
		t.Errorf("%d charts after the swap", n)
	}
	// PNG downloads come from the chart itself.
	if png := browserEval[string](t, ctx, `echarts.getInstanceByDom(document.getElementById('heatmap-llm')).getDataURL({type: 'png'}).slice(0, 22)`); png != "data:image/png;base64," {
		t.Errorf("PNG data URL starts %q", png)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
