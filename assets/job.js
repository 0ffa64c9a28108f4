// The job page (web/job.templ): follows a running analysis through its
// server-sent events (data-events), falling back to polling its JSON
// (data-state), and reloads when it ends, since the server renders every end
// state (overview, error, cancelled).
(function () {
  'use strict';
  const { $, fmtBytes, fmtDuration, Rate, fetchJSON, onReady } = window.deltascope;

  const terminal = new Set(['done', 'failed', 'cancelled']);

  function initJob() {
    const box = $('[data-job]');
    if (!box) return;
    const field = (f) => $('[data-field="' + f + '"]', box);
    if (terminal.has(field('status').textContent)) return;
    const rate = new Rate();
    const set = (f, t) => { const e = field(f); if (e) e.textContent = t; };

    function update(a) {
      set('status', a.status);
      field('bar').value = Math.round((a.progress || 0) * 1000);
      set('bytes', fmtBytes(a.bytes_done) + ' of ' + fmtBytes(a.bytes_total));
      set('percent', ((a.progress || 0) * 100).toFixed(1) + ' %');
      set('tensor', a.current_tensor || (a.status === 'queued' ? 'waiting for a worker' : ''));
      if (a.status === 'running') {
        rate.add(a.bytes_done);
        const r = rate.perSecond();
        set('rate', isFinite(r) ? fmtBytes(r) + '/s' : '–');
        set('eta', isFinite(r) && r > 0 ? fmtDuration((a.bytes_total - a.bytes_done) / r) : '–');
      }
      if (terminal.has(a.status)) window.location.reload();
    }

    let polling = false;
    function poll() {
      if (polling) return;
      polling = true;
      const tick = () => fetchJSON('GET', box.dataset.state)
        .then((a) => { update(a); if (!terminal.has(a.status)) setTimeout(tick, 1000); })
        .catch(() => setTimeout(tick, 3000));
      tick();
    }
    if (!window.EventSource) { poll(); return; }
    const es = new EventSource(box.dataset.events);
    es.addEventListener('progress', (e) => update(JSON.parse(e.data)));
    // EventSource reconnects by itself after a dropped connection; it gives up
    // (CLOSED) only on an HTTP error, and then polling takes over.
    es.addEventListener('error', () => { if (es.readyState === EventSource.CLOSED) poll(); });
  }

  onReady(initJob);
})();
