package handlers

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deltascope/deltascope/store"
)

// axisNamesClipped lists the axis names of the chart with this DOM id that are
// not drawn whole inside its canvas (a name at an axis's end ran off it: "la"
// for "layer", "para" for "parameters (M)").
func axisNamesClipped(id string) string {
	return `(() => { const c = echarts.getInstanceByDom(document.getElementById(` + jsString(id) + `));
		const o = c.getOption(), names = [...(o.xAxis || []), ...(o.yAxis || [])].map(a => a.name).filter(Boolean);
		const w = c.getWidth(), h = c.getHeight(), drawn = {};
		c.getZr().storage.getDisplayList(true).forEach(el => {
			if (!el.style || !names.includes(el.style.text)) return;
			const r = el.getBoundingRect().clone(); if (el.transform) r.applyTransform(el.transform);
			drawn[el.style.text] = r.x >= 0 && r.y >= 0 && r.x + r.width <= w + 0.5 && r.y + r.height <= h + 0.5;
		});
		return names.filter(n => !drawn[n]); })()`
}

// The rest of issue 13's first ten minutes, on an OpenVLA-shaped pair (an
// lm_head and an embedding of its own, three vision and projector
// components) in a real browser at 1440×900: the LLM heatmap gives embed_tokens
// and lm_head rows of their own, each named for itself; the extreme-tensor
// tables hold weight matrices only; every axis name is drawn whole; the evals
// chart fits its y axis to 93–98 %; the composer says in the open what loads a
// sliced checkpoint; an analysis in which nothing aligned is failed, with the
// reason, on its page and on the home list; ids are shortened with the whole
// id as a tooltip; a path outside the roots names them and --root; and the
// server's file picker on a fresh data folder says its folder is empty.
func TestBrowserOpenVLAFirstTenMinutes(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	genOpenVLAUnder(t, s.root)
	id := s.postAnalysis(t, `{"base": ["ovla/base/prismatic.safetensors", "vision_backbone.featurizer.=ovla/base/dinov2.safetensors",
		"vision_backbone.fused_featurizer.=ovla/base/siglip.safetensors"], "vla": ["ovla/vla"]}`)
	failed := s.postAnalysis(t, `{"base": ["dinov2.=ovla/base/dinov2.safetensors"], "vla": ["ovla/vla"]}`)
	s.waitStatus(t, id, store.StatusDone)
	s.waitStatus(t, failed, store.StatusFailed)
	browserDo(t, ctx, "1440×900", 10*time.Second, chromedp.EmulateViewport(1440, 900))

	// ---- overview: embed_tokens and lm_head are rows of the LLM map
	browserDo(t, ctx, "open the overview", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id))
	maps := []string{"heatmap-llm", "heatmap-vision-dinov2", "heatmap-vision-siglip", "heatmap-projector"}
	for _, m := range maps {
		browserWait(t, ctx, m, heatmapDrawn(m), 20*time.Second)
	}
	rowOf := func(part string) string {
		return browserEval[string](t, ctx, `(() => { const spec = JSON.parse(document.getElementById('heatmap-llm-data').textContent);
			const key = Object.keys(spec.meta.names).find(k => spec.meta.names[k].endsWith(`+jsString(part)+`));
			return key === undefined ? '' : spec.meta.y_labels[Number(key.split(',')[1])]; })()`)
	}
	if lm, embed := rowOf("lm_head.weight"), rowOf("embed_tokens.weight"); lm != "lm_head" || embed != "embed_tokens" {
		t.Errorf("LLM heatmap rows: lm_head's %q, embed_tokens's %q; want rows named for each", lm, embed)
	}
	if n := browserEval[int](t, ctx, `document.querySelectorAll('#heatmap-embed, #heatmap-lm_head').length`); n != 0 {
		t.Errorf("%d charts of their own for embed or lm_head (a 1×1 map stretched to a bar)", n)
	}
	for _, m := range maps {
		if clipped := browserEval[[]string](t, ctx, axisNamesClipped(m)); len(clipped) != 0 {
			t.Errorf("%s: axis names %q are not drawn whole", m, clipped)
		}
	}
	// Weights only: the extreme tables list no token, norm, bias or layer scale.
	kinds := browserEval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid="table-most"] tbody tr, [data-testid="table-least"] tbody tr')].map(r => r.cells[3].textContent.trim())`)
	if len(kinds) < 10 {
		t.Errorf("the extreme tables hold %d rows", len(kinds))
	}
	for _, k := range kinds {
		switch k {
		case "norm", "bias", "layer_scale", "token", "pos_embed":
			t.Errorf("a %s tensor in the weights-only tables (%q)", k, kinds)
		}
	}

	// The spectrum page too: embed_tokens and lm_head are rows of the LLM's
	// map, not maps of their own.
	if code, b := send(t, "POST", s.URL+"/api/analyses/"+id+"/spectrum", "application/json", `{"rank": 8}`); code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("start the spectra: %d %s", code, b)
	}
	s.waitSpectrum(t, id, 8, "done")
	browserDo(t, ctx, "open the spectrum page", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id+"/spectrum?rank=8"))
	browserWait(t, ctx, "the LLM's spectrum map", heatmapDrawn("spectrum-llm"), 20*time.Second)
	if n := browserEval[int](t, ctx, `document.querySelectorAll('#spectrum-embed, #spectrum-lm_head').length`); n != 0 {
		t.Errorf("%d spectrum maps of their own for embed or lm_head", n)
	}
	if rows := browserEval[[]string](t, ctx, `JSON.parse(document.getElementById('spectrum-llm-data').textContent).meta.y_labels`); !slices.Contains(rows, "embed_tokens") || !slices.Contains(rows, "lm_head") || slices.Contains(rows, "embed") {
		t.Errorf("LLM spectrum rows %q; want embed_tokens and lm_head among them", rows)
	}

	// The most and least changed tables share the page's width: at 1280, 1440
	// and 1920 px each fits its half with room for a vertical scrollbar (its
	// narrowest layout, every name broken at its dots), with a name column
	// that still holds a few segments; the least-changed one used to hide its
	// last column behind a horizontal scrollbar at every width.
	for _, width := range []int64{1280, 1440, 1920} {
		browserDo(t, ctx, "resize", 10*time.Second, chromedp.EmulateViewport(width, 900), chromedp.Navigate(s.URL+"/analyses/"+id))
		browserWait(t, ctx, "heatmap", heatmapDrawn("heatmap-llm"), 20*time.Second)
		fits := browserEval[[][]float64](t, ctx, `['most', 'least'].map(k => { const t = document.querySelector('[data-testid="table-' + k + '"]');
			t.style.width = 'min-content'; const w = t.getBoundingClientRect().width;
			const name = Math.min(...[...t.querySelectorAll('td.name')].map(e => e.getBoundingClientRect().width));
			t.style.width = ''; return [w, t.parentElement.clientWidth, name]; })`)
		for i, f := range fits {
			if f[0] > f[1]-16 || f[2] < 150 {
				t.Errorf("%d px: the %s table needs %.0f px of %.0f (room for a scrollbar kept), its name column %.0f px", width, []string{"most", "least"}[i], f[0], f[1], f[2])
			}
		}
	}
	browserDo(t, ctx, "1440×900", 10*time.Second, chromedp.EmulateViewport(1440, 900))

	// ---- evals: the y axis fits 93–98 %, the axis names are whole
	s.saveRecipe(t, id, "light", "openvla-light")
	for _, body := range []string{
		`{"recipe": "baseline", "benchmark": "libero_spatial", "success_rate": 0.978, "episodes": 500}`,
		`{"recipe": "light", "benchmark": "libero_spatial", "success_rate": 0.933, "episodes": 500}`,
	} {
		if code, out := send(t, "POST", s.URL+"/api/analyses/"+id+"/evals", "application/json", body); code != 201 {
			t.Fatalf("add an eval result: %d %s", code, out)
		}
	}
	browserDo(t, ctx, "open the evals page", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id+"/evals"))
	browserWait(t, ctx, "the evals chart", `!!document.querySelector('#chart-evals canvas') && !!echarts.getInstanceByDom(document.getElementById('chart-evals'))`, 20*time.Second)
	if y := browserEval[[]float64](t, ctx, `(() => { const y = echarts.getInstanceByDom(document.getElementById('chart-evals')).getOption().yAxis[0]; return [y.min, y.max]; })()`); len(y) != 2 || y[0] < 0.85 || y[0] > 0.933 || y[1] < 0.978 || y[1] > 1 {
		t.Errorf("evals y axis %v; want it fitted around 0.933–0.978", y)
	}
	if clipped := browserEval[[]string](t, ctx, axisNamesClipped("chart-evals")); len(clipped) != 0 {
		t.Errorf("evals chart: axis names %q are not drawn whole", clipped)
	}

	// ---- composer: what loads each checkpoint, beside the downloads
	browserDo(t, ctx, "open the composer", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+id+"/compose"))
	browserWait(t, ctx, "the counts", `document.querySelector('[data-testid="params-after"]')?.textContent !== '–'`, 20*time.Second)
	note := browserEval[string](t, ctx, `(() => { const n = document.querySelector('[data-testid="sliced-loader"]');
		return n && n.offsetParent !== null && n.getBoundingClientRect().height > 0 ? n.textContent.replace(/\s+/g, ' ') : ''; })()`)
	for _, want := range []string{"masked checkpoint", "from_pretrained loads it unchanged", "deltascope_sliced", "cannot build it"} {
		if !strings.Contains(note, want) {
			t.Errorf("the export note %q lacks %q", note, want)
		}
	}
	if d := browserEval[string](t, ctx, `document.querySelector('[data-testid="export-sliced"] button').getAttribute('aria-describedby') || ''`); d != "sliced-loader" {
		t.Errorf("the sliced download is described by %q", d)
	}
	// The picker names the preset loaded, and none once a rule is changed.
	picker := `document.querySelector('[data-testid="preset-select"]').value`
	if got := browserEval[string](t, ctx, picker); got != "openvla-light" {
		t.Errorf("the picker shows %q; the page starts from openvla-light", got)
	}
	browserEval[bool](t, ctx, `(() => { const r = document.querySelector('[data-testid="ratio-0"]'); r.value = '0.3'; r.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`)
	if got := browserEval[string](t, ctx, picker); got != "" {
		t.Errorf("after a rule changed, the picker still shows %q", got)
	}
	browserEval[bool](t, ctx, `(() => { const s = document.querySelector('[data-testid="preset-select"]'); s.value = 'openvla-moderate'; s.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`)
	if got := browserEval[string](t, ctx, picker); got != "openvla-moderate" {
		t.Errorf("after choosing openvla-moderate, the picker shows %q", got)
	}
	browserWait(t, ctx, "the counts", `document.querySelector('[data-testid="params-after"]')?.textContent !== '–'`, 20*time.Second)
	for _, comp := range []string{"chart-components", "chart-layers"} {
		if clipped := browserEval[[]string](t, ctx, axisNamesClipped(comp)); len(clipped) != 0 {
			t.Errorf("composer %s: axis names %q are not drawn whole", comp, clipped)
		}
	}

	// ---- nothing aligned: failed, with the reason, on its page and at home
	browserDo(t, ctx, "open the failed analysis", 20*time.Second, chromedp.Navigate(s.URL+"/analyses/"+failed), jsReady)
	if st := browserEval[string](t, ctx, `document.querySelector('[data-testid="status"]').textContent`); st != "failed" {
		t.Errorf("an analysis that aligned nothing reads %q", st)
	}
	if msg := browserEval[string](t, ctx, `(() => { const e = document.querySelector('[data-field="error"]'); return e.hidden ? '' : e.textContent; })()`); !strings.Contains(msg, "no tensor aligned") || !strings.Contains(msg, "--map") {
		t.Errorf("its page says %q; want the reason and the rule", msg)
	}
	browserDo(t, ctx, "open home", 20*time.Second, chromedp.Navigate(s.URL+"/"), jsReady)
	row := `document.querySelector('[data-testid="analysis-` + failed + `"]')`
	if got := browserEval[string](t, ctx, row+`.textContent`); !strings.Contains(got, "failed") {
		t.Errorf("its home row reads %q", got)
	}
	if d := browserEval[string](t, ctx, row+`.querySelector('[data-testid="rel-delta"]').textContent`); d != "–" {
		t.Errorf("its home row shows ΔW %q", d)
	}
	if n := browserEval[int](t, ctx, row+`.querySelectorAll('[data-testid="compose-link"]').length`); n != 0 {
		t.Error("a failed analysis offers the composer")
	}
	// Ids are shortened, the whole id a tooltip away.
	ids := browserEval[[][]string](t, ctx, `[...document.querySelectorAll('#analyses-list tbody tr')].map(r => { const c = r.querySelector('code.id'); return c ? [r.dataset.testid, c.textContent, c.title] : [r.dataset.testid, '', '']; })`)
	if len(ids) != 2 {
		t.Errorf("home lists %d analyses, want 2", len(ids))
	}
	for _, r := range ids {
		full := strings.TrimPrefix(r[0], "analysis-")
		if r[2] != full || !strings.HasSuffix(r[1], "…") || !strings.HasPrefix(full, strings.TrimSuffix(r[1], "…")) || len(r[1]) >= len(full) {
			t.Errorf("id %s shown as %q with tooltip %q", full, r[1], r[2])
		}
	}

	// ---- the form: a path outside the roots names them and --root
	browserDo(t, ctx, "open /new", 20*time.Second, chromedp.Navigate(s.URL+"/new"), jsReady)
	browserEval[bool](t, ctx, `localStorage.clear() || true`)
	browserDo(t, ctx, "reload /new", 20*time.Second, chromedp.Reload(), jsReady)
	for _, side := range []struct{ side, path string }{{"base", "/etc/hostname"}, {"vla", "ovla/vla"}} {
		browserDo(t, ctx, "add a "+side.side+" path", 10*time.Second,
			chromedp.SendKeys(chromedp.CSS(`[data-side="`+side.side+`"] input[name="path"]`), side.path),
			chromedp.Click(chromedp.CSS(`[data-side="`+side.side+`"] [data-add-path] button`)))
	}
	browserDo(t, ctx, "preview", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-testid="preview"]`)))
	browserWait(t, ctx, "the refusal", `!document.querySelector('[data-error]').hidden`, 20*time.Second)
	msg := browserEval[string](t, ctx, `document.querySelector('[data-error]').textContent`)
	if !strings.Contains(msg, "outside the allowed folders") || !strings.Contains(msg, s.root) || !strings.Contains(msg, s.uploads) || !strings.Contains(msg, "--root DIR") {
		t.Errorf("outside the roots, the form says %q; want the allowed folders (%s, %s) and --root DIR", msg, s.uploads, s.root)
	}
	// The picker on a fresh data folder (no uploads yet): an empty folder, said
	// so, at its root (no "/.", no Up, no "Add this folder").
	browserDo(t, ctx, "pick files on the server", 10*time.Second, chromedp.Click(chromedp.CSS(`[data-side="base"] [data-browse]`)))
	browserWait(t, ctx, "the file browser", `!!document.querySelector('[data-side="base"] [data-browser] .browser-head')`, 10*time.Second)
	head := browserEval[string](t, ctx, `document.querySelector('[data-side="base"] [data-browser] .browser-head').textContent`)
	if strings.Contains(head, "/.") || strings.Contains(head, "Up") || strings.Contains(head, "Add this folder") {
		t.Errorf("the picker's head at a root reads %q", head)
	}
	empty := browserEval[string](t, ctx, `document.querySelector('[data-testid="picker-empty-base"]')?.textContent || ''`)
	if !strings.Contains(empty, "empty") || !strings.Contains(empty, "--root DIR") {
		t.Errorf("an empty uploads folder reads %q", empty)
	}
}

// A training run's line charts draw their axis names whole at 1280 and 1920
// px: "step" under its axis (it was cut to "st" at the axis's end) and the
// long y names ("‖W_t − W_t−1‖ / ‖W_t−1‖") from the axis rightwards, on a row
// under the legend (centred on the axis, the canvas's left edge cut them).
func TestBrowserSeriesAxisNamesWhole(t *testing.T) {
	ctx := newBrowser(t)
	s := newPageServer(t, true)
	s.genSeries(t, "run")
	code, body := send(t, "POST", s.URL+"/api/series", "application/json", `{"name": "run", "base": ["run/base/model.safetensors"], "folder": "run"}`)
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(body), &created); code != http.StatusCreated || err != nil {
		t.Fatalf("create the series: %d %s", code, body)
	}
	s.waitSeries(t, created.ID)
	for _, width := range []int64{1280, 1920} {
		browserDo(t, ctx, "open the run", 20*time.Second, chromedp.EmulateViewport(width, 900), chromedp.Navigate(s.URL+"/series/"+created.ID))
		for _, id := range []string{"series-delta", "series-drift"} {
			browserWait(t, ctx, id, `!!document.querySelector('#`+id+` canvas') && !!echarts.getInstanceByDom(document.getElementById('`+id+`'))`, 20*time.Second)
			if clipped := browserEval[[]string](t, ctx, axisNamesClipped(id)); len(clipped) != 0 {
				t.Errorf("%d px, %s: axis names %q are not drawn whole", width, id, clipped)
			}
		}
		// The y name keeps clear of the legend above it.
		overlap := browserEval[bool](t, ctx, `(() => { const c = echarts.getInstanceByDom(document.getElementById('series-drift'));
			const name = c.getOption().yAxis[0].name, box = (el) => { const r = el.getBoundingRect().clone(); if (el.transform) r.applyTransform(el.transform); return r; };
			const els = c.getZr().storage.getDisplayList(true), y = els.find(el => el.style && el.style.text === name);
			// The legend's boxes: its background and each item's, at the top.
			const legend = els.filter(el => el.type === 'rect' && box(el).y < 30 && box(el).width > 20);
			return !y || legend.length === 0 || legend.some(el => box(el).intersect(box(y))); })()`)
		if overlap {
			t.Errorf("%d px: the drift chart's y name runs into its legend (or either is missing)", width)
		}
	}
}
