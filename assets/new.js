// The new-analysis page (web/new.templ): two sides of sources, each from
// resumable uploads (tus-js-client, vendored) or the server's file picker,
// name rules, attention geometry, an alignment preview, then the start. The
// form's state survives a reload (localStorage). Every URL it calls comes
// from the page's data attributes, made in web/urls.go.
(function () {
  'use strict';
  const ds = window.deltascope;
  const { $, $$, h, fmtBytes, fmtDuration, Rate } = ds;

  const CHUNK = 8 << 20; // bytes per PATCH: small enough to resume cheaply
  const STATE_KEY = 'deltascope.new';

  // prefillFromQuery puts an analysis request carried in the page's query
  // (base, vla, map repeated; exact=1; heads=COMPONENT=HEADS:KV) into the
  // form's state, and says whether there was one.
  function prefillFromQuery(state, q) {
    if (!q.getAll('base').length && !q.getAll('vla').length) return false;
    // [PREFIX=]PATH, split as the server does (checkpoint.ParseSpec): a
    // prefix has no slash.
    const source = (spec) => {
      const i = spec.indexOf('=');
      return i >= 0 && !/[/\\]/.test(spec.slice(0, i))
        ? { spec: spec.slice(i + 1), prefix: spec.slice(0, i), from: 'server' }
        : { spec, prefix: '', from: 'server' };
    };
    state.sources = { base: q.getAll('base').map(source), vla: q.getAll('vla').map(source) };
    state.rules = q.getAll('map').map((m) => {
      const i = m.indexOf('=>');
      return i < 0 ? { re: m, repl: '' } : { re: m.slice(0, i), repl: m.slice(i + 2) };
    });
    state.exact = q.get('exact') === '1';
    state.geometry = {};
    for (const hd of q.getAll('heads')) {
      const [comp, spec] = [hd.slice(0, hd.lastIndexOf('=')), hd.slice(hd.lastIndexOf('=') + 1)];
      const [heads, kv] = spec.split(':').map(Number);
      if (comp && heads > 0) state.geometry[comp] = { heads, kv_heads: kv || heads };
    }
    return true;
  }

  function initNew() {
    const page = $('[data-new]');
    if (!page) return;
    const errorBox = $('[data-error]', page);
    // Every URL comes from the page (web/urls.go).
    const urls = page.dataset;
    const saved = (() => { try { return JSON.parse(localStorage.getItem(STATE_KEY)) || {}; } catch (e) { return {}; } })();
    // state survives a reload: chosen sources, rules, and the upload ids to
    // resume (a browser cannot keep the File itself; the user re-selects it).
    const state = Object.assign({ session: '', sources: { base: [], vla: [] }, rules: [], uploads: {}, exact: false, geometry: {} }, saved);
    // A link from an analysis ("analyse again with this rule", "set the
    // heads") brings its request in the query: it replaces what was kept.
    const fromLink = prefillFromQuery(state, new URLSearchParams(window.location.search));
    const save = () => localStorage.setItem(STATE_KEY, JSON.stringify(state));

    const showError = (msg) => ds.showError(errorBox, msg);
    const api = ds.fetchJSON;

    // ---- sources
    function renderSources(side) {
      const ul = $('[data-side="' + side + '"] [data-sources]', page);
      ul.replaceChildren(...state.sources[side].map((s, i) => h('li', {},
        h('code', { text: s.spec }),
        h('label', {}, 'prefix ', h('input', {
          type: 'text', value: s.prefix || '', placeholder: 'none', 'aria-label': 'Prefix for ' + s.spec,
          oninput: (e) => { s.prefix = e.target.value.trim(); save(); },
        })),
        h('button', { type: 'button', class: 'small', 'aria-label': 'Remove ' + s.spec, onclick: () => { state.sources[side].splice(i, 1); save(); renderSources(side); } }, 'Remove'),
      )));
      if (!state.sources[side].length) ul.append(h('li', { class: 'empty', text: 'No sources yet.' }));
    }
    function addSource(side, spec, from) {
      if (state.sources[side].some((s) => s.spec === spec)) return;
      state.sources[side].push({ spec, prefix: '', from: from || 'server' });
      save();
      renderSources(side);
    }

    // Uploaded files become sources: a folder holding an index JSON is one
    // sharded source; other safetensors files and pickles are one each;
    // config.json and the like only sit beside them.
    function syncUploadSources(side) {
      const done = Object.values(state.uploads).filter((u) => u.side === side && u.done && u.session === state.session);
      const dirOf = (p) => p.slice(0, p.lastIndexOf('/'));
      const indexDirs = new Set(done.filter((u) => /\.index\.json$/.test(u.spec_path)).map((u) => dirOf(u.spec_path)));
      const specs = [...indexDirs];
      for (const u of done) {
        if (/\.(safetensors|bin|pt|pth)$/.test(u.spec_path) && !indexDirs.has(dirOf(u.spec_path))) specs.push(u.spec_path);
      }
      const keep = state.sources[side].filter((s) => s.from !== 'upload' || specs.includes(s.spec));
      for (const spec of specs) if (!keep.some((s) => s.spec === spec)) keep.push({ spec, prefix: '', from: 'upload' });
      state.sources[side] = keep;
      save();
      renderSources(side);
    }

    // ---- uploads
    const queue = [];
    let uploading = false;

    // Uploads speak tus 1.0 through tus-js-client (vendored): chunks, retries
    // with backoff and resuming after a dropped connection are the library's.
    const uploadURL = (id) => urls.uploadsUrl + '/' + encodeURIComponent(id);

    // The server's reason from a failed tus request ("ERR_QUOTA: you hold …").
    function tusMessage(err) {
      const res = err && err.originalResponse;
      const body = res ? String(res.getBody() || '').trim() : '';
      if (body) return body.replace(/^ERR_[A-Z_]+: /, '');
      return res ? 'HTTP ' + res.getStatus() : 'connection lost';
    }

    async function serverOffset(id) {
      const r = await fetch(uploadURL(id), { method: 'HEAD', headers: { 'Tus-Resumable': '1.0.0' } });
      if (r.status === 404) return -1;
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return Number(r.headers.get('Upload-Offset'));
    }

    function uploadRow(side, rel, size) {
      const bar = h('progress', { max: String(Math.max(size, 1)), value: '0', 'aria-label': 'Upload of ' + rel });
      const info = h('span', { class: 'info', text: 'waiting' });
      const li = h('li', { 'data-upload': rel }, h('span', { class: 'name', text: rel }), bar, info);
      $('[data-side="' + side + '"] [data-uploads]', page).append(li);
      return { li, bar, info };
    }

    async function uploadOne(job) {
      const { side, file, rel, row } = job;
      const key = side + '|' + rel + '|' + file.size;
      const rate = new Rate();
      const known = state.uploads[key];
      const show = (n) => {
        row.bar.value = n;
        rate.add(n);
        const r = rate.perSecond();
        row.info.textContent = fmtBytes(n) + ' of ' + fmtBytes(file.size) +
          (isFinite(r) && r > 0 ? ' · ' + fmtBytes(r) + '/s · ' + fmtDuration((file.size - n) / r) + ' left' : '');
      };
      await new Promise((resolve, reject) => {
        const up = new tus.Upload(file, {
          endpoint: urls.uploadsUrl,
          // An upload of this session a reload interrupted resumes where the
          // server is; one the server forgot is created afresh.
          uploadUrl: known && known.session === state.session ? uploadURL(known.id) : null,
          chunkSize: CHUNK,
          retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000],
          metadata: { session: state.session || '', side, path: rel, filename: file.name },
          storeFingerprintForResuming: false,
          onAfterResponse: (req, res) => {
            if (req.getMethod() !== 'POST' || res.getStatus() !== 201) return;
            const id = decodeURIComponent(String(res.getHeader('Location') || '').split('/').pop());
            state.session = res.getHeader('Deltascope-Upload-Session') || state.session;
            state.uploads[key] = { id, session: state.session, side, rel, size: file.size, spec_path: res.getHeader('Deltascope-Spec-Path'), done: false };
            save();
          },
          onProgress: (sent) => show(sent),
          onShouldRetry: (err) => {
            const st = err.originalResponse ? err.originalResponse.getStatus() : 0;
            const retry = !st || st === 408 || st === 409 || st === 423 || st === 429 || st >= 500 && st !== 507;
            if (retry) row.info.textContent = tusMessage(err) + ' · retrying';
            return retry;
          },
          onError: (err) => reject(new Error(tusMessage(err))),
          onSuccess: () => resolve(),
        });
        up.start();
      });
      const u = state.uploads[key];
      show(file.size);
      row.info.textContent = fmtBytes(file.size) + ' · done';
      row.li.dataset.done = '1';
      u.done = true;
      save();
      syncUploadSources(side);
    }

    async function runQueue() {
      if (uploading) return;
      uploading = true;
      while (queue.length) {
        const job = queue.shift();
        try {
          await uploadOne(job);
        } catch (err) {
          job.row.info.textContent = 'failed: ' + err.message;
          job.row.li.dataset.failed = '1';
          showError(job.rel + ': ' + err.message);
        }
      }
      uploading = false;
    }

    function addFiles(side, files) {
      showError('');
      for (const file of files) {
        const rel = file.webkitRelativePath || file.name;
        $$('[data-side="' + side + '"] [data-uploads] li', page).filter((li) => li.dataset.upload === rel).forEach((li) => li.remove());
        queue.push({ side, file, rel, row: uploadRow(side, rel, file.size) });
      }
      runQueue();
    }

    // Uploads a reload interrupted: the user re-selects the files to resume.
    function showInterrupted() {
      for (const u of Object.values(state.uploads)) {
        if (u.done || u.session !== state.session) continue;
        const row = uploadRow(u.side, u.rel, u.size);
        row.info.textContent = 'interrupted; select this file again to resume';
        serverOffset(u.id).then((off) => { if (off >= 0) { row.bar.value = off; row.info.textContent = fmtBytes(off) + ' of ' + fmtBytes(u.size) + ' · interrupted; select this file again to resume'; } }).catch(() => {});
      }
    }

    // ---- server file browser: local roots (folders on the server's disk)
    // and remote ones (an s3:// prefix, an hf:// organisation), the same way:
    // entries' paths are relative to the root, and root + '/' + path is the
    // source to add.
    async function browse(side, root, path, cursor) {
      const box = $('[data-side="' + side + '"] [data-browser]', page);
      box.hidden = false;
      let data;
      try {
        const q = new URLSearchParams({ root: String(root), path, limit: '100' });
        if (cursor) q.set('cursor', cursor);
        data = await api('GET', urls.filesUrl + '?' + q);
      } catch (err) {
        // A wrong repository or folder: say so, and keep the way back.
        box.replaceChildren(h('p', { class: 'error', text: err.message }),
          h('button', { type: 'button', class: 'small', onclick: () => browse(side, root, '', '') }, 'Back to the root'));
        return;
      }
      const rootPath = data.roots[data.root] || '';
      const specOf = (p) => rootPath.replace(/\/$/, '') + '/' + p;
      const list = cursor ? $('ul', box) : h('ul', { class: 'files', 'data-testid': 'picker-' + side });
      if (!cursor) {
        // A local root's own listing says path "."; it is the root, with no Up
        // and no "Add this folder" (the root itself is not a checkpoint).
        const here = data.path === '.' ? '' : data.path;
        const head = h('div', { class: 'browser-head' });
        if (data.roots.length > 1) {
          const sel = h('select', { 'aria-label': 'Root folder', 'data-testid': 'picker-root-' + side, onchange: (e) => browse(side, Number(e.target.value), '', '') });
          data.roots.forEach((r, i) => sel.append(h('option', { value: String(i), selected: i === data.root }, r)));
          head.append(sel);
        }
        head.append(h('code', { text: rootPath + (here ? '/' + here : '') }));
        if (data.remote === 'hub' && data.commit) head.append(h('span', { class: 'meta', title: data.commit, text: 'commit ' + data.commit.slice(0, 7) }));
        if (data.checkpoint) head.append(h('span', { class: 'meta', text: 'sharded checkpoint' }));
        if (here) {
          const up = here.includes('/') ? here.slice(0, here.lastIndexOf('/')) : '';
          head.append(h('button', { type: 'button', class: 'small', onclick: () => browse(side, data.root, up, '') }, 'Up'));
        }
        if (here) head.append(h('button', { type: 'button', class: 'small', 'data-testid': 'pick-folder', onclick: () => addSource(side, specOf(here)) }, 'Add this folder'));
        head.append(h('button', { type: 'button', class: 'small', onclick: () => { box.hidden = true; } }, 'Close'));
        box.replaceChildren(head, list);
        // The Hub lists an organisation's repositories only through its
        // search, which a server root does not reach: name the repository.
        if (data.need_repo) {
          const input = h('input', { type: 'text', name: 'repo', size: '30', placeholder: 'REPO or REPO@REVISION', 'aria-label': 'Repository in ' + rootPath, 'data-testid': 'picker-repo-' + side });
          box.append(h('form', { class: 'controls', onsubmit: (e) => { e.preventDefault(); if (input.value.trim()) browse(side, data.root, input.value.trim(), ''); } },
            h('label', {}, 'Repository in ' + rootPath + ' ', input), h('button', { type: 'submit', class: 'small' }, 'List')));
        }
      }
      for (const e of data.entries) {
        const what = e.dir ? (e.checkpoint ? 'folder · sharded checkpoint' : 'folder') : e.kind + ' · ' + fmtBytes(e.size);
        list.append(h('li', { 'data-entry': e.path },
          e.dir ? h('button', { type: 'button', class: 'link', onclick: () => browse(side, data.root, e.path, '') }, e.name + '/')
            : h('span', { text: e.name }),
          h('span', { class: 'meta', title: e.etag ? 'ETag ' + e.etag : '', text: what }),
          h('button', { type: 'button', class: 'small', 'aria-label': 'Add ' + e.path, onclick: () => addSource(side, specOf(e.path)) }, 'Add'),
        ));
      }
      // An empty folder (the uploads folder of a fresh data folder, say) says
      // so, and where else to look, rather than showing nothing.
      if (!cursor && !data.entries.length && !data.need_repo) {
        list.append(h('li', { class: 'empty', 'data-testid': 'picker-empty-' + side,
          text: 'This folder is empty.' + (data.roots.length > 1 ? ' Choose another folder in the list above.' : '') +
            ' The server lists only its own folders (uploads, the demo) and those it was started with as --root DIR.' }));
      }
      $$('.more', box).forEach((b) => b.remove());
      if (data.next) box.append(h('button', { type: 'button', class: 'small more', onclick: () => browse(side, data.root, data.path, data.next) }, 'More'));
    }

    // ---- rules
    const rulesBody = $('[data-rules]', page);
    function renderRules() {
      rulesBody.replaceChildren(...state.rules.map((r, i) => h('tr', {},
        h('td', {}, h('input', { type: 'text', value: r.re, 'aria-label': 'Regex of rule ' + (i + 1), oninput: (e) => { r.re = e.target.value; save(); } })),
        h('td', {}, h('input', { type: 'text', value: r.repl, 'aria-label': 'Replacement of rule ' + (i + 1), oninput: (e) => { r.repl = e.target.value; save(); } })),
        h('td', {}, h('button', { type: 'button', class: 'small', onclick: () => { state.rules.splice(i, 1); save(); renderRules(); } }, 'Remove')),
      )));
    }
    $('[data-add-rule]', page).addEventListener('click', () => { state.rules.push({ re: '', repl: '' }); save(); renderRules(); });

    function request() {
      const specs = (side) => state.sources[side].map((s) => (s.prefix ? s.prefix + '=' + s.spec : s.spec));
      return {
        base: specs('base'), vla: specs('vla'), map: state.rules.filter((r) => r.re).map((r) => r.re + '=>' + r.repl),
        name: $('[data-name]', page).value.trim(),
        tags: $('[data-tags]', page).value.split(',').map((t) => t.trim()).filter(Boolean),
        exact: !!state.exact,
        geometry: state.geometry || {},
      };
    }

    // ---- precision and attention geometry (what the preview found or
    // guessed per component; a change here is sent as "geometry")
    const exactBox = $('[data-exact]', page);
    exactBox.checked = !!state.exact;
    exactBox.addEventListener('change', () => { state.exact = exactBox.checked; save(); });
    const geoBox = $('[data-geometry]', page);
    function renderGeometry(rows) {
      const set = state.geometry || {};
      // Components set earlier but not in this preview still go with the request.
      const byComp = new Map((rows || []).map((g) => [g.component, g]));
      for (const c of Object.keys(set)) if (!byComp.has(c)) byComp.set(c, { component: c, heads: set[c].heads, kv_heads: set[c].kv_heads, head_dim: 0, set: true });
      if (!byComp.size) {
        geoBox.replaceChildren(h('p', { class: 'note', text: 'Preview the alignment to see each component\'s attention geometry.' }));
        return;
      }
      const input = (g, key, label) => h('input', {
        type: 'number', min: '1', step: '1', value: set[g.component] ? set[g.component][key] : g[key],
        'aria-label': label + ' of ' + g.component, 'data-testid': 'geometry-' + key + '-' + g.component,
        onchange: (e) => {
          const row = e.target.closest('tr');
          const heads = Number($('[data-key="heads"]', row).value), kv = Number($('[data-key="kv_heads"]', row).value);
          state.geometry = Object.assign({}, state.geometry, { [g.component]: { heads, kv_heads: kv || heads } });
          save();
          $('[data-src]', row).textContent = 'set';
        },
      });
      geoBox.replaceChildren(h('table', { class: 'geometry-table' },
        h('thead', {}, h('tr', {}, ...['component', 'heads', 'KV heads', 'head size', 'from'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, ...Array.from(byComp.values()).map((g) => {
          const hi = input(g, 'heads', 'Heads'), ki = input(g, 'kv_heads', 'KV heads');
          hi.dataset.key = 'heads';
          ki.dataset.key = 'kv_heads';
          const src = set[g.component] ? 'set' : g.guessed ? 'guessed: check it' : 'found';
          return h('tr', { 'data-testid': 'geometry-row-' + g.component },
            h('td', {}, h('code', { text: g.component })), h('td', {}, hi), h('td', {}, ki),
            h('td', { text: g.head_dim ? String(g.head_dim) : 'from the shapes' }),
            h('td', { class: g.guessed && !set[g.component] ? 'guess' : '', 'data-src': true, text: src }));
        }))));
    }
    renderGeometry([]);

    // ---- preview and start
    const out = $('[data-preview-out]', page);
    // Suggested name rules, each one click from the rules table (and a new preview).
    function suggestionList(list) {
      if (!list.length) return null;
      return h('div', { class: 'suggestions', 'data-testid': 'suggestions' },
        h('p', { text: 'These name rules would pair tensors left unmatched:' }),
        h('ul', {}, ...list.map((sg) => h('li', {},
          h('code', { text: sg.rule }), ' pairs ' + sg.pairs + ' (e.g. ', h('code', { text: sg.example_base }), ' → ', h('code', { text: sg.example_vla }), ') ',
          h('button', {
            type: 'button', class: 'small', 'data-testid': 'apply-suggestion',
            onclick: () => {
              const i = sg.rule.indexOf('=>');
              state.rules.push({ re: sg.rule.slice(0, i), repl: sg.rule.slice(i + 2) });
              save();
              renderRules();
              $('[data-preview]', page).click();
            },
          }, 'Add this rule')))));
    }
    function nameList(title, names) {
      return h('details', { open: names.length > 0 && names.length <= 20 }, h('summary', { text: title + ' (' + names.length + ')' }),
        h('ul', { class: 'names' }, ...names.map((n) => h('li', {}, h('code', { text: n })))));
    }
    $('[data-preview]', page).addEventListener('click', async () => {
      showError('');
      out.replaceChildren(h('p', { text: 'Reading headers…' }));
      try {
        const p = await api('POST', urls.previewUrl, request());
        out.replaceChildren(
          h('h2', { text: 'Alignment preview' }),
          h('p', { 'data-testid': 'aligned', text: p.aligned + ' tensors align (' + p.base_tensors + ' in the base, ' + p.vla_tensors + ' in the VLA).' }),
          h('p', { class: 'note', text: 'By rule: ' + Object.entries(p.pairs_by_rule || {}).map(([k, v]) => k + ' ' + v).join(', ') }),
          nameList('Only in the base', p.base_only),
          nameList('Only in the VLA', p.vla_only),
          nameList('Mismatched shapes', p.mismatched.map((m) => m.base + ' → ' + m.vla + ': ' + m.shape_base.join('×') + ' vs ' + m.shape_vla.join('×') + ' (' + m.reason + ')')),
          nameList('Ambiguous', p.ambiguous.map((a) => a.name + ' (' + a.side + '): ' + a.candidates.join(', '))),
          suggestionList(p.suggestions || []),
        );
        renderGeometry(p.geometry || []);
      } catch (err) {
        out.replaceChildren();
        showError(err.message);
      }
    });
    $('[data-start]', page).addEventListener('click', async (e) => {
      showError('');
      e.target.disabled = true;
      try {
        const a = await api('POST', urls.analysesUrl, request());
        localStorage.removeItem(STATE_KEY); // the next analysis starts afresh
        // ... and so does this page if Back brings it from the cache.
        state.sources = { base: [], vla: [] };
        state.rules = [];
        state.uploads = {};
        state.exact = false;
        state.geometry = {};
        window.location.href = urls.analysisPrefix + encodeURIComponent(a.id);
      } catch (err) {
        showError(err.message);
        e.target.disabled = false;
      }
    });

    // ---- wiring per side
    for (const side of ['base', 'vla']) {
      const sec = $('[data-side="' + side + '"]', page);
      for (const input of $$('[data-files], [data-folder]', sec)) {
        input.addEventListener('change', () => { addFiles(side, Array.from(input.files)); input.value = ''; });
      }
      const drop = $('[data-drop]', sec);
      drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
      drop.addEventListener('dragleave', () => drop.classList.remove('over'));
      drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); addFiles(side, Array.from(e.dataTransfer.files)); });
      $('[data-browse]', sec).addEventListener('click', () => browse(side, 0, '', ''));
      $('[data-add-path]', sec).addEventListener('submit', (e) => {
        e.preventDefault();
        const input = e.target.elements.path;
        if (input.value.trim()) addSource(side, input.value.trim());
        input.value = '';
      });
      renderSources(side);
    }
    renderRules();
    showInterrupted();

    // Sources restored from an earlier visit say so, with a way to drop them:
    // they may belong to an analysis that has long finished.
    const restored = $('[data-restored]', page);
    restored.hidden = fromLink || !(saved.sources && ((saved.sources.base || []).length || (saved.sources.vla || []).length));
    $('[data-clear-saved]', page).addEventListener('click', () => {
      localStorage.removeItem(STATE_KEY);
      window.location.reload();
    });
    // A page brought back by Back after a start shows what it held then:
    // reload it from the (now empty) saved state instead.
    window.addEventListener('pageshow', (e) => { if (e.persisted) window.location.reload(); });
  }

  ds.onReady(initNew);
})();
