// The pruning composer (web/compose.templ): rule editors built from the page's
// data script, a debounced POST to /api/analyses/{id}/resolve after every
// change, and the answer drawn as counts, warnings and ECharts charts. No
// inline script or handler, so the Content-Security-Policy holds; text from
// the server reaches the DOM through textContent or echarts.format.encodeHTML.
(function () {
  'use strict';

  const $ = (sel, root) => (root || document).querySelector(sel);
  const tid = (id) => $('[data-testid="' + id + '"]');

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

  // show hides with display (the sheet's display rules outrank [hidden]).
  function show(el, yes) {
    el.hidden = !yes;
    el.style.display = yes ? '' : 'none';
  }

  const fmtCount = (n) => Number(n).toLocaleString('en-US');
  const fmtPct = (x) => (100 * x).toFixed(2) + ' %';

  const DIRECTIONS = [['highest', 'highest ΔW'], ['lowest', 'lowest ΔW'], ['magnitude', 'lowest base magnitude'], ['random', 'random (seeded)']];
  const METRICS = [['', 'module default'], ['relative', 'relative'], ['absolute', 'absolute']];
  const VARIANTS = [['', 'module default'], ['openvla', 'OpenVLA'], ['pi05', 'π0.5'], ['mean', 'mean of slices']];
  const SCOPES = [['global', 'global (all layers)'], ['layer', 'per layer']];

  function init() {
    const script = document.getElementById('compose-data');
    if (!script) return;
    const D = JSON.parse(script.textContent);
    const modules = new Map(D.modules.map((m) => [m.module, m]));
    const state = {
      recipeId: D.recipe_id || 0,
      rules: ((D.recipe && D.recipe.rules) || []).map((r) => Object.assign({}, r)),
      last: null,
      timer: 0,
      inflight: null,
    };
    const nameInput = tid('recipe-name');
    const noteInput = tid('recipe-note');

    // ------------------------------------------------------------ recipe

    function cleanRule(r) {
      const out = { module: r.module, ratio: Number(r.ratio) || 0, direction: r.direction || 'highest' };
      if (out.direction === 'random') out.seed = Math.max(0, Math.floor(Number(r.seed) || 0));
      if (r.metric) out.metric = r.metric;
      if (r.variant) out.variant = r.variant;
      out.scope = r.scope || 'global';
      if (r.protected && r.protected.length) out.protected = r.protected.slice();
      if (Number(r.round_to) > 1) out.round_to = Math.floor(Number(r.round_to));
      if (r.allow_empty_layer) out.allow_empty_layer = true;
      return out;
    }
    function currentRecipe() {
      return { name: nameInput.value.trim() || 'recipe', note: noteInput.value, rules: state.rules.map(cleanRule) };
    }

    // parseLayers reads "0, 2, 5-7" into [0, 2, 5, 6, 7]; null when malformed.
    function parseLayers(text) {
      const out = [];
      for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
        const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(part);
        if (!m) return null;
        const a = Number(m[1]), b = m[2] == null ? a : Number(m[2]);
        if (b < a || b - a > 4096) return null;
        for (let l = a; l <= b; l++) out.push(l);
      }
      return out;
    }

    // ------------------------------------------------------------ rule editors

    function select(options, value, attrs, onChange) {
      const s = h('select', attrs);
      for (const [v, label] of options) s.append(h('option', { value: v, text: label }));
      s.value = value == null ? '' : value;
      s.addEventListener('change', () => onChange(s.value));
      return s;
    }
    function field(label, control) {
      return h('label', {}, label, control);
    }

    function renderRules() {
      const box = tid('rules');
      box.replaceChildren();
      state.rules.forEach((rule, i) => {
        const changed = () => schedule();
        const moduleOptions = D.modules.map((m) => [m.module, m.module + ' (' + fmtCount(m.units) + ')']);
        if (!modules.has(rule.module)) moduleOptions.push([rule.module, rule.module + ' (not in this analysis)']);

        const ratio = h('input', { type: 'range', min: '0', max: '0.9', step: '0.005', value: String(rule.ratio || 0),
          'data-testid': 'ratio-' + i, 'aria-label': 'Ratio of rule ' + (i + 1) });
        const ratioOut = h('output', { text: fmtPct(rule.ratio || 0) });
        ratio.addEventListener('input', () => {
          rule.ratio = Number(ratio.value);
          ratioOut.textContent = fmtPct(rule.ratio);
          changed();
        });

        const seed = h('input', { type: 'number', min: '0', step: '1', value: String(rule.seed || 0), 'data-testid': 'seed-' + i });
        const seedField = field('Seed', seed);
        show(seedField, rule.direction === 'random');
        seed.addEventListener('input', () => { rule.seed = Number(seed.value); changed(); });

        const prot = h('input', { type: 'text', placeholder: 'e.g. 0, 30-31', value: (rule.protected || []).join(', '),
          'data-testid': 'protected-' + i });
        prot.addEventListener('input', () => {
          const layers = parseLayers(prot.value);
          prot.setAttribute('aria-invalid', layers == null ? 'true' : 'false');
          if (layers != null) { rule.protected = layers; changed(); }
        });

        const roundTo = h('input', { type: 'number', min: '0', step: '1', value: String(rule.round_to || 0), 'data-testid': 'round-' + i });
        roundTo.addEventListener('input', () => { rule.round_to = Number(roundTo.value); changed(); });

        const remove = h('button', { type: 'button', class: 'small danger', text: 'Remove', 'data-testid': 'remove-' + i });
        remove.addEventListener('click', () => { state.rules.splice(i, 1); renderRules(); changed(); });

        box.append(h('fieldset', { class: 'rule controls', 'data-testid': 'rule-' + i },
          h('legend', { text: 'Rule ' + (i + 1) }),
          field('Module', select(moduleOptions, rule.module, { 'data-testid': 'module-' + i }, (v) => { rule.module = v; changed(); })),
          field('Ratio', h('span', { class: 'ratio' }, ratio, ratioOut)),
          field('Prune', select(DIRECTIONS, rule.direction || 'highest', { 'data-testid': 'direction-' + i }, (v) => {
            rule.direction = v;
            show(seedField, v === 'random');
            changed();
          })),
          seedField,
          field('Metric', select(METRICS, rule.metric || '', { 'data-testid': 'metric-' + i }, (v) => { rule.metric = v; changed(); })),
          field('Unit score', select(VARIANTS, rule.variant || '', { 'data-testid': 'variant-' + i }, (v) => { rule.variant = v; changed(); })),
          field('Ranking', select(SCOPES, rule.scope || 'global', { 'data-testid': 'scope-' + i }, (v) => { rule.scope = v; changed(); })),
          field('Protected layers', prot),
          // Say which convention N follows: the authors' code keeps protected
          // units in N (it only never picks them), deltascope leaves them out.
          h('p', { class: 'note', 'data-testid': 'protected-note-' + i,
            text: 'Protected layers are never pruned, and their units are left out of N: the ratio applies to the other layers\' units (the authors\' code counts them in N). A rule may empty a layer, as theirs does; the result then warns.' }),
          field('Round kept units to', roundTo),
          remove));
      });
      if (!state.rules.length) box.append(h('p', { class: 'empty', text: 'No rule: nothing is pruned. Add a rule or start from a preset.' }));
    }

    // ------------------------------------------------------------ resolve

    function schedule() {
      clearTimeout(state.timer);
      state.timer = setTimeout(resolve, 100);
      syncExports();
    }

    async function resolve() {
      if (state.inflight) state.inflight.abort();
      const ctl = new AbortController();
      state.inflight = ctl;
      const err = tid('compose-error');
      try {
        const resp = await fetch(D.api.resolve, {
          method: 'POST', headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(currentRecipe()), signal: ctl.signal,
        });
        const body = await resp.json();
        if (ctl !== state.inflight) return;
        if (!resp.ok) {
          err.textContent = body.error || ('The server answered ' + resp.status);
          err.hidden = false;
          clearResult(); // no number on screen may belong to another recipe
          return;
        }
        err.hidden = true;
        state.last = body;
        draw(body);
      } catch (e) {
        if (e.name === 'AbortError') return;
        err.textContent = 'Could not reach the server: ' + e.message;
        err.hidden = false;
      }
    }

    // clearResult empties the counts, warnings and charts after an error, so
    // the last good recipe's figures do not sit beside a message about this one.
    function clearResult() {
      state.last = null;
      for (const id of ['params-before', 'params-after', 'params-pruned']) tid(id).textContent = '–';
      tid('compose-warnings').replaceChildren();
      for (const c of Object.values(charts)) c.clear();
      for (const id of ['chart-components', 'chart-layers', 'chart-mask']) delete document.getElementById(id).dataset.drawn;
    }

    function draw(res) {
      const p = res.params;
      tid('params-before').textContent = fmtCount(p.before);
      tid('params-after').textContent = fmtCount(p.after) + ' (' + fmtPct(p.before ? p.after / p.before : 0) + ')';
      tid('params-pruned').textContent = fmtCount(p.before - p.after) + ' (' + fmtPct(p.fraction) + ')';
      const warn = tid('compose-warnings');
      warn.replaceChildren(...(res.warnings || []).map((w) => h('li', { class: 'warning', text: w })));
      drawComponents(res);
      drawLayers(res);
      fillMaskModules(res);
      drawMask(res);
    }

    // ------------------------------------------------------------ charts

    const charts = {};
    function chart(id, height) {
      if (!window.echarts) return null;
      const box = document.getElementById(id);
      if (!charts[id]) {
        box.style.height = height + 'px';
        charts[id] = echarts.init(box, null, { renderer: 'canvas' });
        charts[id].on('finished', () => { box.dataset.drawn = '1'; });
      }
      return charts[id];
    }
    function barTooltip(unit) {
      const esc = echarts.format.encodeHTML;
      return (ps) => {
        ps = [].concat(ps);
        return esc(unit + ' ' + ps[0].axisValueLabel) + '<br>' +
          ps.filter((q) => q.value != null).map((q) => esc(q.seriesName) + ': <b>' + esc(Number(q.value).toFixed(2)) + ' %</b>').join('<br>');
      };
    }

    function drawComponents(res) {
      const c = chart('chart-components', 260);
      if (!c) return;
      const comps = Object.keys(res.by_component).filter((k) => res.by_component[k].before > 0).sort();
      c.setOption({
        animation: false,
        grid: { left: 50, right: 10, top: 20, bottom: 60 },
        tooltip: { trigger: 'axis', formatter: barTooltip('component') },
        xAxis: { type: 'category', data: comps, axisLabel: { rotate: 30 } },
        yAxis: { type: 'value', name: '% pruned', min: 0 },
        series: [{ type: 'bar', name: 'pruned', data: comps.map((k) => 100 * res.by_component[k].fraction) }],
      }, true);
    }

    function drawLayers(res) {
      const c = chart('chart-layers', 300);
      if (!c) return;
      const comps = Object.keys(res.by_layer).filter((k) => res.by_layer[k].some((x) => x.after < x.before)).sort();
      const n = Math.max(0, ...comps.map((k) => res.by_layer[k].length));
      const layers = Array.from({ length: n }, (_, i) => String(i));
      c.setOption({
        animation: false,
        legend: { top: 0 },
        grid: { left: 50, right: 10, top: 40, bottom: 30 },
        tooltip: { trigger: 'axis', formatter: barTooltip('layer') },
        xAxis: { type: 'category', data: layers, name: 'layer' },
        yAxis: { type: 'value', name: '% pruned', min: 0 },
        series: comps.map((k) => ({
          type: 'bar', name: k,
          data: layers.map((_, i) => { const x = res.by_layer[k][i]; return x && x.before > 0 ? 100 * x.fraction : null; }),
        })),
      }, true);
    }

    function fillMaskModules(res) {
      const sel = tid('mask-module');
      const wanted = res.rules.map((r) => r.module).filter((m) => modules.has(m));
      const have = Array.from(sel.options).map((o) => o.value);
      if (wanted.join('|') === have.join('|')) return;
      const keep = sel.value;
      sel.replaceChildren(...wanted.map((m) => h('option', { value: m, text: m })));
      if (wanted.includes(keep)) sel.value = keep;
    }

    // drawMask bins each layer's units (at most 128 bins) and colours each bin
    // by the fraction of its units the recipe prunes.
    function drawMask(res) {
      const mod = modules.get(tid('mask-module').value);
      const c = chart('chart-mask', 120);
      if (!c) return;
      if (!mod) { c.clear(); return; }
      const dot = mod.module.lastIndexOf('.');
      const pruned = ((res.units_pruned || {})[mod.module.slice(0, dot)] || {})[mod.module.slice(dot + 1)] || {};
      const maxSize = Math.max(1, ...mod.sizes);
      const width = Math.ceil(maxSize / Math.min(128, maxSize));
      const bins = Math.ceil(maxSize / width);
      const data = [];
      mod.layers.forEach((layer, y) => {
        const size = mod.sizes[y];
        const counts = new Array(bins).fill(0);
        for (const u of pruned[layer] || []) counts[Math.floor(u / width)]++;
        for (let x = 0; x * width < size; x++) {
          const inBin = Math.min(width, size - x * width);
          data.push([x, y, counts[x] / inBin]);
        }
      });
      const esc = echarts.format.encodeHTML;
      const box = document.getElementById('chart-mask');
      box.style.height = Math.max(120, 60 + 14 * mod.layers.length) + 'px';
      c.resize();
      c.setOption({
        animation: false,
        grid: { left: 50, right: 10, top: 10, bottom: 50 },
        tooltip: {
          formatter: (p) => esc('layer ' + mod.layers[p.value[1]] + ', units ' + p.value[0] * width + '–' +
            (Math.min((p.value[0] + 1) * width, mod.sizes[p.value[1]]) - 1)) + '<br>pruned: <b>' + esc(fmtPct(p.value[2])) + '</b>',
        },
        xAxis: { type: 'category', data: Array.from({ length: bins }, (_, i) => String(i * width)), name: 'unit' },
        yAxis: { type: 'category', data: mod.layers.map(String), name: 'layer' },
        visualMap: { min: 0, max: 1, show: true, orient: 'horizontal', left: 'center', bottom: 0, itemHeight: 80,
          inRange: { color: ['#f6f8fa', '#b42318'] } },
        series: [{ type: 'heatmap', data: data, progressive: 0 }],
      }, true);
    }

    // ------------------------------------------------------------ save, export

    function status(text) { tid('save-status').textContent = text; }

    function syncExports() {
      const json = JSON.stringify(currentRecipe());
      for (const f of document.querySelectorAll('form.export')) f.elements.recipe.value = json;
    }

    function savedLinks() {
      const box = tid('saved-exports');
      box.replaceChildren();
      if (!state.recipeId) return;
      box.append('Saved recipe #' + state.recipeId + ': ');
      for (const f of document.querySelectorAll('form.export')) {
        const kind = f.dataset.kind;
        box.append(h('a', { href: D.api.recipes + '/' + state.recipeId + '/export?kind=' + encodeURIComponent(kind),
          'data-testid': 'export-link-' + kind, text: kind }), ' ');
      }
      show(tid('duplicate'), true);
    }

    async function api(method, url, body) {
      const resp = await fetch(url, { method, headers: { 'Content-Type': 'application/json' }, body: body == null ? undefined : JSON.stringify(body) });
      const out = resp.status === 204 ? {} : await resp.json();
      if (!resp.ok) throw new Error(out.error || ('the server answered ' + resp.status));
      return out;
    }

    async function save(asNew) {
      const recipe = currentRecipe();
      const body = { name: nameInput.value.trim(), note: noteInput.value, recipe: recipe };
      try {
        const rec = state.recipeId && !asNew
          ? await api('PATCH', D.api.recipes + '/' + state.recipeId, body)
          : await api('POST', D.api.recipes, body);
        state.recipeId = rec.id;
        history.replaceState(null, '', D.page_url + '?recipe=' + rec.id);
        status('Saved as “' + rec.name + '” (#' + rec.id + ').');
        savedLinks();
      } catch (e) {
        status('Not saved: ' + e.message);
      }
    }

    async function duplicate() {
      try {
        const rec = await api('POST', D.api.recipes + '/' + state.recipeId + '/duplicate');
        window.location.href = D.page_url + '?recipe=' + rec.id;
      } catch (e) {
        status('Not duplicated: ' + e.message);
      }
    }

    // ------------------------------------------------------------ wiring

    tid('add-rule').addEventListener('click', () => {
      const used = new Set(state.rules.map((r) => r.module));
      const free = D.modules.find((m) => !used.has(m.module)) || D.modules[0];
      if (!free) return;
      state.rules.push({ module: free.module, ratio: 0.1, direction: 'highest', scope: 'global' });
      renderRules();
      schedule();
    });
    tid('preset-select').addEventListener('change', (e) => {
      const p = D.presets.find((x) => x.name === e.target.value);
      if (!p) return;
      state.rules = p.recipe.rules.map((r) => Object.assign({}, r));
      // A preset is a whole recipe: its name and note come with it, or the
      // exports of its rules would carry the previous recipe's name.
      nameInput.value = p.name;
      noteInput.value = p.recipe.note || '';
      renderRules();
      schedule();
    });
    tid('mask-module').addEventListener('change', () => { if (state.last) drawMask(state.last); });
    nameInput.addEventListener('input', syncExports);
    noteInput.addEventListener('input', syncExports);
    tid('save').addEventListener('click', () => save(false));
    tid('save-new').addEventListener('click', () => save(true));
    tid('duplicate').addEventListener('click', duplicate);
    for (const f of document.querySelectorAll('form.export')) f.addEventListener('submit', syncExports);
    window.addEventListener('resize', () => { for (const c of Object.values(charts)) c.resize(); });

    // The picker shows the preset the page starts from (the server loads the
    // first preset that fits the model, named as that preset).
    const startRecipe = D.recipe || {};
    const loaded = D.presets.find((p) => p.name === (startRecipe.name || D.name) &&
      JSON.stringify(p.recipe.rules) === JSON.stringify(startRecipe.rules));
    if (loaded) tid('preset-select').value = loaded.name;

    show(tid('duplicate'), !!state.recipeId);
    renderRules();
    savedLinks();
    syncExports();
    resolve();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
