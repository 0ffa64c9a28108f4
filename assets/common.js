// deltascope's shared script, loaded by every page before the page's own
// module (job.js, new.js, compose.js). It exposes one namespace,
// window.deltascope: DOM and formatting helpers, a JSON fetch, and the chart
// drawer that hands ECharts the options the server built (web/viz), from a
// <script type="application/json"> or from an API answer. It also runs the
// declarative behaviours any page may use (data-api forms, data-filter,
// data-toggle, data-png, the whoami box).
// Nothing here is inline in a page, so a strict Content-Security-Policy holds;
// text that came from files (tensor names) only ever reaches the DOM through
// textContent or echarts.format.encodeHTML. No path is written here: every URL
// comes from the page's data attributes (web/urls.go).
(function () {
  'use strict';

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  // h builds an element; children are nodes or strings (set as text). A
  // value is set as the property, so a rebuilt input shows it.
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v == null) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'value') e.value = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }

  // show hides with display too (the sheet's display rules outrank [hidden]).
  function show(el, yes) {
    el.hidden = !yes;
    el.style.display = yes ? '' : 'none';
  }

  // showError puts a message in an error box, or hides the box for ''.
  function showError(box, msg) {
    if (!box) return;
    box.textContent = msg || '';
    box.hidden = !msg;
  }

  function fmtBytes(n) {
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    n = Number(n) || 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toPrecision(3) : String(n)) + ' ' + u[i];
  }
  function fmtNum(x) {
    if (x == null || Number.isNaN(x)) return '–';
    if (x === 0) return '0';
    const a = Math.abs(x);
    return a >= 1e-3 && a < 1e5 ? String(Number(x.toPrecision(4))) : x.toExponential(3);
  }
  function fmtDuration(s) {
    if (!isFinite(s) || s < 0) return '–';
    s = Math.round(s);
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }
  const fmtCount = (n) => Number(n).toLocaleString('en-US');
  const fmtPct = (x) => (100 * x).toFixed(2) + ' %';

  // Rate measures bytes per second over the last few seconds, for ETAs.
  class Rate {
    constructor() { this.samples = []; }
    add(bytes) {
      const now = performance.now() / 1000;
      this.samples.push([now, bytes]);
      while (this.samples.length > 2 && now - this.samples[0][0] > 8) this.samples.shift();
    }
    perSecond() {
      const s = this.samples;
      if (s.length < 2) return NaN;
      const dt = s[s.length - 1][0] - s[0][0];
      return dt > 0.2 ? (s[s.length - 1][1] - s[0][1]) / dt : NaN;
    }
  }

  // fetchJSON calls the JSON API: body (if any) goes as JSON; the answer's
  // JSON comes back, and a failure throws the server's error message. opts
  // may carry an AbortController's signal.
  async function fetchJSON(method, url, body, opts) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(url, Object.assign({ method, headers, body: body === undefined ? undefined : JSON.stringify(body) }, opts));
    const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = new Error(data.error || (method + ' ' + url + ': HTTP ' + r.status));
      err.status = r.status;
      throw err;
    }
    return data;
  }

  // ---------------------------------------------------------------- charts

  const charts = new Map(); // DOM id → ECharts instance

  function heatTooltip(meta) {
    const esc = echarts.format.encodeHTML;
    return (p) => {
      const v = p.value;
      let x = meta.x_labels[v[0]];
      if (meta.bin_width > 1) {
        x = x + '–' + (Number(x) + meta.bin_width - 1) + ' (' + (meta.bin_note || 'maximum of the bin') + ')';
      }
      const name = meta.names && meta.names[v[0] + ',' + v[1]];
      return (name ? '<b>' + esc(name) + '</b><br>' : '') +
        esc(meta.x_name + ' ' + x) + '<br>' + esc(meta.y_name + ' ' + meta.y_labels[v[1]]) + '<br>' +
        esc(meta.value) + ': <b>' + esc(fmtNum(v[3])) + '</b>';
    };
  }

  // xyTooltip replaces ECharts' default, whose colour markers are style
  // attributes the Content-Security-Policy would refuse. Empty slots ('-')
  // are left out.
  function xyTooltip(meta) {
    const esc = echarts.format.encodeHTML;
    const unit = meta.unit ? ' ' + meta.unit : '';
    return (ps) => {
      ps = [].concat(ps);
      const p = ps[0];
      if (Array.isArray(p.value)) { // scatter: [x, y, index]
        return esc('#' + p.value[2]) + '<br>' + esc(meta.x_name + ' ' + fmtNum(p.value[0])) + '<br>' +
          esc(meta.y_name + ' ' + fmtNum(p.value[1]));
      }
      return esc(meta.x_name + ' ' + p.axisValueLabel) + '<br>' +
        ps.filter((q) => q.value != null && q.value !== '-')
          .map((q) => esc(q.seriesName) + ': <b>' + esc(fmtNum(Number(q.value)) + unit) + '</b>').join('<br>');
    };
  }

  // pointTooltip names the model under a point of the evaluation chart:
  // values are [x, y, label].
  function pointTooltip(meta) {
    const esc = echarts.format.encodeHTML;
    return (p) => '<b>' + esc(String(p.value[2])) + '</b> · ' + esc(p.seriesName) + '<br>' +
      esc(meta.x_name + ' ' + fmtNum(p.value[0])) + '<br>' + esc(meta.y_name + ' ' + (p.value[1] * 100).toFixed(1) + ' %');
  }

  // setChart draws spec ({option, meta}, as web/viz builds it) in box,
  // replacing what the box showed; it returns the ECharts instance.
  function setChart(box, spec) {
    if (!window.echarts) return null;
    const meta = spec.meta;
    box.style.height = (meta.height || 300) + 'px';
    let chart = charts.get(box.id);
    if (!chart || chart.getDom() !== box) {
      chart = echarts.init(box, null, { renderer: 'canvas' });
      chart.on('finished', () => { box.dataset.drawn = '1'; });
      charts.set(box.id, chart);
    } else {
      chart.resize();
    }
    const opt = spec.option;
    opt.tooltip = Object.assign({}, opt.tooltip, {
      formatter: meta.kind === 'heatmap' ? heatTooltip(meta) : meta.kind === 'points' ? pointTooltip(meta) : xyTooltip(meta),
    });
    // The colour bar's handles print raw values: a log scale's bar runs in
    // log10 units, and a formatter (a function) cannot travel in the JSON.
    if (meta.kind === 'heatmap' && opt.visualMap) {
      for (const vm of [].concat(opt.visualMap)) vm.formatter = (v) => fmtNum(meta.log ? Math.pow(10, v) : v);
    }
    chart.off('click');
    chart.setOption(opt, true);
    if (meta.link_base && meta.names) {
      chart.on('click', (p) => {
        const key = meta.kind === 'heatmap' ? p.value && p.value[0] + ',' + p.value[1] : String(p.dataIndex);
        const name = key && meta.names[key];
        if (!name) return;
        const n = encodeURIComponent(name);
        window.location.href = meta.link_base + n + '?' + (meta.link_query ? meta.link_query + '&' : '') + 'sel=' + n;
      });
    }
    return chart;
  }

  // clearChart empties a chart (after an error, no figure of another state
  // may stay on screen).
  function clearChart(box) {
    const c = charts.get(box.id);
    if (c) c.clear();
    delete box.dataset.drawn;
  }

  // drawChart draws a [data-chart] box from its JSON script, once.
  function drawChart(box) {
    if (!document.body.contains(box) || (charts.has(box.id) && charts.get(box.id).getDom() === box)) return;
    const script = document.getElementById(box.dataset.chart);
    if (!script) return;
    setChart(box, JSON.parse(script.textContent));
  }

  // initCharts draws the first chart at once and each next one in its own
  // task, so the first is on screen and clickable while the rest still draw.
  function initCharts(root) {
    if (!window.echarts) return;
    for (const [id, c] of charts) { // charts swapped out by htmx
      if (!document.body.contains(c.getDom())) { c.dispose(); charts.delete(id); }
    }
    const boxes = $$('[data-chart]', root);
    const next = () => {
      const box = boxes.shift();
      if (!box) return;
      drawChart(box);
      if (boxes.length) setTimeout(next, 0);
    };
    next();
  }

  function downloadPNG(id) {
    const c = charts.get(id);
    if (!c) return;
    const a = h('a', { href: c.getDataURL({ type: 'png', pixelRatio: 2, backgroundColor: '#fff' }), download: id + '.png' });
    document.body.append(a);
    a.click();
    a.remove();
  }

  document.addEventListener('click', (e) => {
    const b = e.target.closest('[data-png]');
    if (b) downloadPNG(b.dataset.png);
  });
  window.addEventListener('resize', () => charts.forEach((c) => c.resize()));
  document.addEventListener('htmx:afterSettle', () => initCharts(document));

  // ------------------------------------------------------------ API forms

  // <form data-api="METHOD URL"> is sent to the JSON API by fetch: its named
  // fields as a JSON object (number inputs as numbers, the clicked submit
  // button's name=value too), or, when it has a file input, that file as the
  // body. Success reloads the page, which shows the change; an error goes in
  // the form's [data-error]. Listening on document keeps forms that htmx
  // swaps in working. data-confirm asks first.
  document.addEventListener('submit', async (e) => {
    const form = e.target.closest('form[data-api]');
    if (!form) return;
    e.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const sp = form.dataset.api.indexOf(' ');
    const method = form.dataset.api.slice(0, sp);
    const url = form.dataset.api.slice(sp + 1);
    const errBox = $('[data-error]', form);
    const headers = { Accept: 'application/json' };
    let body;
    const file = $('input[type=file]', form);
    if (file) {
      if (!file.files.length) { showError(errBox, 'Choose a file first.'); return; }
      body = file.files[0];
      headers['Content-Type'] = file.files[0].type || 'text/csv';
    } else {
      const o = {};
      for (const el of form.elements) {
        if (!el.name || el.disabled || el.type === 'submit') continue;
        if (el.type === 'number') { if (el.value !== '') o[el.name] = Number(el.value); }
        // data-list: a comma-separated field sent as a list (an analysis's tags).
        else if ('list' in el.dataset) o[el.name] = el.value.split(',').map((t) => t.trim()).filter(Boolean);
        else o[el.name] = el.value;
      }
      if (e.submitter && e.submitter.name) o[e.submitter.name] = e.submitter.value;
      body = JSON.stringify(o);
      headers['Content-Type'] = 'application/json';
    }
    const buttons = $$('button', form);
    buttons.forEach((b) => { b.disabled = true; });
    showError(errBox, '');
    try {
      const r = await fetch(url, { method, headers, body });
      if (!r.ok) {
        const d = await r.json().catch(() => ({}));
        throw new Error(d.error || method + ' ' + url + ': HTTP ' + r.status);
      }
      window.location.reload();
    } catch (err) {
      showError(errBox, err.message);
      buttons.forEach((b) => { b.disabled = false; });
    }
  });

  // <input data-filter="ID"> hides the rows of table #ID whose
  // data-filter-text lacks a word typed (the server filters the same way with
  // ?q=, for links and for pages without JavaScript).
  document.addEventListener('input', (e) => {
    const input = e.target.closest('input[data-filter]');
    if (!input) return;
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const tr of $$('#' + input.dataset.filter + ' tbody tr')) {
      const hay = tr.dataset.filterText || '';
      tr.hidden = !words.every((w) => hay.includes(w));
      if (!tr.hidden) shown++;
    }
    const empty = $('[data-filter-empty="' + input.dataset.filter + '"]');
    if (empty) empty.hidden = shown > 0;
  });

  // [data-toggle="ID"] shows or hides the element with that id (a comment's
  // edit form).
  document.addEventListener('click', (e) => {
    const b = e.target.closest('[data-toggle]');
    if (!b) return;
    const el = document.getElementById(b.dataset.toggle);
    if (el) el.hidden = !el.hidden;
  });

  // In accounts mode, show who is signed in and offer to sign out.
  function initWhoami() {
    const box = $('[data-whoami]');
    if (!box) return;
    fetchJSON('GET', box.dataset.whoami)
      .then((me) => {
        if (!me || me.auth !== 'accounts') return;
        $('[data-who-name]', box).textContent = me.name + ' (' + me.role + ')';
        // The accounts page is an admin's; the server refuses it to others.
        const admin = $('[data-who-admin]', box);
        if (admin) admin.hidden = me.role !== 'admin';
        box.hidden = false;
      })
      .catch(() => {});
  }

  // ------------------------------------------------------------- start up

  // Page modules register their start with onReady; they run, in load order,
  // once the document is parsed and every deferred script has loaded.
  const starts = [];
  function onReady(fn) { starts.push(fn); }

  function init() {
    initWhoami();
    initCharts(document);
    for (const fn of starts) fn();
    // Tests (and anything else) can wait for this before clicking: until now a
    // form would submit without its handler.
    document.documentElement.dataset.js = 'ready';
  }
  // Deferred scripts all run before DOMContentLoaded, so the page modules
  // loaded after this one have registered by then.
  if (document.readyState === 'complete') setTimeout(init, 0);
  else document.addEventListener('DOMContentLoaded', init);

  window.deltascope = {
    $, $$, h, show, showError, fmtBytes, fmtNum, fmtDuration, fmtCount, fmtPct, Rate, fetchJSON,
    setChart, clearChart, initCharts, onReady,
  };
})();
