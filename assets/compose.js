// The pruning composer (web/compose.templ): rule editors built from the page's
// data script, a debounced POST to the resolve API (its URL in that script)
// after every change, and the answer drawn as counts, warnings and the charts
// whose options the server built (web/viz, ?charts=1). No inline script or
// handler, so the Content-Security-Policy holds; text from the server reaches
// the DOM through textContent or echarts.format.encodeHTML.
(function () {
  'use strict';
  const ds = window.deltascope;
  const { $, h, show, fmtCount, fmtPct } = ds;
  const tid = (id) => $('[data-testid="' + id + '"]');

  const DIRECTIONS = [['highest', 'highest ΔW'], ['lowest', 'lowest ΔW'], ['magnitude', 'lowest base magnitude'], ['random', 'random (seeded)']];
  const METRICS = [['', 'module default'], ['relative', 'relative'], ['absolute', 'absolute']];
  const VARIANTS = [['', 'module default'], ['openvla', 'OpenVLA'], ['pi05', 'π0.5'], ['mean', 'mean of slices']];
  const SCOPES = [['global', 'global (all layers)'], ['layer', 'per layer']];

  function init() {
    const script = document.getElementById('compose-data');
    if (!script) return;
    const D = JSON.parse(script.textContent);
    // The page's URL patterns (web/urls.go) hold {rid} where a saved recipe's
    // id goes and {kind} where an export kind does (web.RecipeIDSlot, web.KindSlot).
    const withRecipe = (pattern, id) => pattern.replace('{rid}', encodeURIComponent(String(id)));
    const modules = new Map(D.modules.map((m) => [m.module, m]));
    const state = {
      recipeId: D.recipe_id || 0,
      rules: ((D.recipe && D.recipe.rules) || []).map((r) => Object.assign({}, r)),
      last: null,
      timer: 0,
      inflight: null,
      maskFor: '', // the module whose unit map the last request asked for
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
      syncPicker();
    }

    // The picker names the preset whose rules are loaded: once a rule is
    // changed, added or removed, no preset is, and it says "(choose)" again.
    function syncPicker() {
      const sel = tid('preset-select');
      const p = D.presets.find((x) => x.name === sel.value);
      if (p && JSON.stringify(p.recipe.rules.map(cleanRule)) !== JSON.stringify(state.rules.map(cleanRule))) sel.value = '';
    }

    // resolveURL asks for the charts too, the unit map of the module chosen
    // (or about to be: the first rule's) in the mask picker.
    function resolveURL() {
      const q = new URLSearchParams({ units: '0', charts: '1' });
      const sel = tid('mask-module');
      const mod = sel.value || (state.rules.find((r) => modules.has(r.module)) || {}).module;
      if (mod) q.set('mask', mod);
      state.maskFor = mod || '';
      return D.api.resolve + '?' + q;
    }

    async function resolve() {
      if (state.inflight) state.inflight.abort();
      const ctl = new AbortController();
      state.inflight = ctl;
      const err = tid('compose-error');
      try {
        const body = await ds.fetchJSON('POST', resolveURL(), currentRecipe(), { signal: ctl.signal });
        if (ctl !== state.inflight) return;
        ds.showError(err, '');
        state.last = body;
        draw(body);
      } catch (e) {
        if (e.name === 'AbortError' || ctl !== state.inflight) return;
        if (e.status) {
          ds.showError(err, e.message);
          clearResult(); // no number on screen may belong to another recipe
        } else {
          ds.showError(err, 'Could not reach the server: ' + e.message);
        }
      }
    }

    // clearResult empties the counts, warnings and charts after an error, so
    // the last good recipe's figures do not sit beside a message about this one.
    function clearResult() {
      state.last = null;
      for (const id of ['params-before', 'params-after', 'params-pruned']) tid(id).textContent = '–';
      tid('compose-warnings').replaceChildren();
      for (const id of CHARTS) ds.clearChart(document.getElementById(id));
    }

    function draw(res) {
      const p = res.params;
      tid('params-before').textContent = fmtCount(p.before);
      tid('params-after').textContent = fmtCount(p.after) + ' (' + fmtPct(p.before ? p.after / p.before : 0) + ')';
      tid('params-pruned').textContent = fmtCount(p.before - p.after) + ' (' + fmtPct(p.fraction) + ')';
      const warn = tid('compose-warnings');
      warn.replaceChildren(...(res.warnings || []).map((w) => h('li', { class: 'warning', text: w })));
      fillMaskModules(res);
      // The rules changed the picker under the request: draw the module it
      // shows now.
      const sel = tid('mask-module');
      if (sel.value && sel.value !== state.maskFor) { resolve(); return; }
      drawCharts(res.charts);
    }

    // ------------------------------------------------------------ charts

    const CHARTS = ['chart-components', 'chart-layers', 'chart-mask'];

    // drawCharts hands the server's chart options to ECharts.
    function drawCharts(c) {
      if (!c) return;
      ds.setChart(document.getElementById('chart-components'), c.components);
      ds.setChart(document.getElementById('chart-layers'), c.layers);
      const mask = document.getElementById('chart-mask');
      if (c.mask) ds.setChart(mask, c.mask);
      else ds.clearChart(mask);
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
        box.append(h('a', { href: withRecipe(D.api.saved_export, state.recipeId).replace('{kind}', encodeURIComponent(kind)),
          'data-testid': 'export-link-' + kind, text: kind }), ' ');
      }
      show(tid('duplicate'), true);
    }

    const api = ds.fetchJSON;

    async function save(asNew) {
      const recipe = currentRecipe();
      const body = { name: nameInput.value.trim(), note: noteInput.value, recipe: recipe };
      try {
        const rec = state.recipeId && !asNew
          ? await api('PATCH', withRecipe(D.api.recipe, state.recipeId), body)
          : await api('POST', D.api.recipes, body);
        state.recipeId = rec.id;
        history.replaceState(null, '', withRecipe(D.edit_url, rec.id));
        status('Saved as “' + rec.name + '” (#' + rec.id + ').');
        savedLinks();
      } catch (e) {
        status('Not saved: ' + e.message);
      }
    }

    async function duplicate() {
      try {
        const rec = await api('POST', withRecipe(D.api.duplicate, state.recipeId));
        window.location.href = withRecipe(D.edit_url, rec.id);
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
    // Another module's unit map: the server draws it.
    tid('mask-module').addEventListener('change', () => { if (state.last) resolve(); });
    nameInput.addEventListener('input', syncExports);
    noteInput.addEventListener('input', syncExports);
    tid('save').addEventListener('click', () => save(false));
    tid('save-new').addEventListener('click', () => save(true));
    tid('duplicate').addEventListener('click', duplicate);
    for (const f of document.querySelectorAll('form.export')) f.addEventListener('submit', syncExports);

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

  ds.onReady(init);
})();
