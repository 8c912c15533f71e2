import { createHash } from 'node:crypto';

/*
 * The status page served at /ui: one HTML document with its style and
 * script inline and its charts drawn as SVG by that script, so it needs no
 * build step and loads nothing from elsewhere (clusters without internet
 * access). The script polls /v1/runs (the list) and /v1/runs/{id}/stats
 * (the selected run) and derives rates from successive samples, so the
 * server keeps no history. Everything from the API is written with
 * textContent or SVG attributes, never parsed as HTML.
 *
 * The script is plain ES2020 without template literals (it lives in one).
 */

const STYLE = `
:root { color-scheme: light; --fg: #1d2430; --muted: #5b6576; --line: #d8dde6; --bg: #f6f7f9; --card: #fff;
  --ok: #1a7f37; --warn: #b35900; --bad: #c62828; --c1: #2f6fdd; --c2: #d9480f; --c3: #2b8a3e; --c4: #7048e8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px; background: #18202c; color: #f1f3f7; }
header h1 { font-size: 17px; margin: 0; font-weight: 600; }
header .conn { margin-left: auto; font-size: 13px; color: #c5ccd8; }
header .conn.error { color: #ffb4a8; }
main { padding: 16px 20px; display: grid; gap: 16px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
h2 { font-size: 15px; margin: 0 0 10px; display: flex; align-items: center; gap: 8px; flex-wrap: wrap; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num, th.num { text-align: right; }
tbody tr { cursor: pointer; }
tbody tr:hover { background: #f0f4fb; }
tbody tr.selected { background: #e3ecfb; }
a { color: var(--c1); }
.phase { font-size: 12px; font-weight: 600; padding: 1px 8px; border-radius: 10px; background: #e9ecf1; }
.phase.Running { background: #dcf3e3; color: var(--ok); }
.phase.Pending { background: #fff1d6; color: var(--warn); }
.phase.Failed { background: #fde2e2; color: var(--bad); }
.phase.Succeeded { background: #e3ecfb; color: #1f4fa8; }
.badge { font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; padding: 1px 6px; border-radius: 4px; background: #f3e8ff; color: #6b21a8; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 8px; margin-bottom: 12px; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.tile .k { font-size: 12px; color: var(--muted); }
.tile .v { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile .v.bad { color: var(--bad); }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
figcaption { font-weight: 600; font-size: 13px; margin-bottom: 4px; }
figcaption span { font-weight: 400; color: var(--muted); }
svg.chart { width: 100%; height: 190px; display: block; }
svg.chart text { font-size: 11px; fill: var(--muted); font-family: inherit; }
.legend { display: flex; gap: 14px; flex-wrap: wrap; font-size: 12px; color: var(--muted); min-height: 18px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; vertical-align: -1px; }
.legend i.sw-ok { background: var(--c1); }
.legend i.sw-bad { background: var(--bad); }
.empty { color: var(--muted); }
footer { padding: 0 20px 16px; color: var(--muted); font-size: 12px; }
`;

const SCRIPT = `
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var intervalMs = Math.min(60000, Math.max(250, Number(params.get('intervalMs')) || 1000));
  var HISTORY_POINTS = Math.min(1200, Math.ceil(300000 / intervalMs) + 1); // five minutes
  var RATE_WINDOW_MS = 10000;
  var NS = 'http://www.w3.org/2000/svg';
  var TERMINAL = { Succeeded: true, Failed: true, Cancelled: true };
  var COLOR = { c1: '#2f6fdd', c2: '#d9480f', c3: '#2b8a3e', c4: '#7048e8', bad: '#c62828', grid: '#e3e7ee', axis: '#9aa3b2' };
  var history = new Map();
  var selected = null;
  var polls = 0;

  function byId(id) { return document.getElementById(id); }
  function text(node, value) { node.textContent = value; return node; }
  function html(tag, cls, value) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (value !== undefined) n.textContent = value;
    return n;
  }
  function svg(tag, attrs, value) {
    var n = document.createElementNS(NS, tag);
    for (var k in attrs) n.setAttribute(k, String(attrs[k]));
    if (value !== undefined) n.textContent = value;
    return n;
  }
  function num(x) { return typeof x === 'number' && isFinite(x) ? x : 0; }
  function compact(x) {
    if (!isFinite(x)) return '-';
    var a = Math.abs(x);
    if (a >= 1e6) return (x / 1e6).toFixed(1) + 'M';
    if (a >= 1e3) return (x / 1e3).toFixed(1) + 'k';
    if (a >= 10 || x === 0) return x.toFixed(0);
    return x.toFixed(a >= 1 ? 1 : 2);
  }
  function pct(x) { return x === undefined || !isFinite(x) ? '-' : Math.round(x * 100) + '%'; }
  function clock(ms) { return new Date(ms).toLocaleTimeString(); }

  // With API authentication on, the page asks once for a token and keeps it
  // for this tab only (sessionStorage), sending it as a bearer token.
  var tokenAsked = false;
  function requestHeaders() {
    var token = null;
    try { token = sessionStorage.getItem('tandem-token'); } catch (e) { token = null; }
    return token ? { accept: 'application/json', authorization: 'Bearer ' + token } : { accept: 'application/json' };
  }
  function getJson(path) {
    return fetch(path, { cache: 'no-store', headers: requestHeaders() }).then(function (res) {
      return res.json().then(function (body) {
        if (res.status === 401 && !tokenAsked) {
          tokenAsked = true;
          var token = window.prompt('This control plane needs an API token (kept for this tab only):');
          if (token) { try { sessionStorage.setItem('tandem-token', token.trim()); tokenAsked = false; } catch (e) { /* storage off: ask again next time */ } }
        }
        if (!res.ok) throw new Error(body && body.error ? body.error.message : 'HTTP ' + res.status);
        return body;
      });
    });
  }

  function hashRun() {
    var m = /^#run=(.+)$/.exec(location.hash);
    return m ? decodeURIComponent(m[1]) : null;
  }

  function chooseRun(runs) {
    var ids = runs.map(function (r) { return r.id; });
    var wanted = hashRun();
    if (wanted && ids.indexOf(wanted) >= 0) return wanted;
    if (selected && ids.indexOf(selected) >= 0) return selected;
    var newest = runs.slice().sort(function (a, b) {
      var open = (TERMINAL[phaseOf(a)] ? 1 : 0) - (TERMINAL[phaseOf(b)] ? 1 : 0);
      if (open !== 0) return open;
      return String((b.status || {}).createdAt || '').localeCompare(String((a.status || {}).createdAt || ''));
    });
    return newest.length ? newest[0].id : null;
  }
  function phaseOf(r) { return (r.status || {}).phase || 'Pending'; }

  function renderRuns(runs) {
    var body = byId('runs-body');
    body.replaceChildren();
    byId('no-runs').hidden = runs.length > 0;
    byId('runs-table').hidden = runs.length === 0;
    runs.forEach(function (r) {
      var s = r.status || {};
      var l = s.ledger || {};
      var g = s.generators || {};
      var spec = r.spec || {};
      var tr = html('tr');
      tr.dataset.run = r.id;
      if (r.id === selected) tr.className = 'selected';
      tr.addEventListener('click', function () { location.hash = 'run=' + encodeURIComponent(r.id); });
      var link = html('a', '', r.id);
      link.href = '#run=' + encodeURIComponent(r.id);
      var idCell = html('td');
      idCell.append(link);
      if (spec.simulation) { idCell.append(' '); idCell.append(html('span', 'badge', 'simulated')); }
      var phaseCell = html('td');
      phaseCell.append(html('span', 'phase ' + phaseOf(r), phaseOf(r)));
      tr.append(idCell, phaseCell,
        html('td', 'num', num(s.trainerStep) + '/' + num(s.maxSteps)),
        html('td', 'num', String(num(s.policyVersion))),
        html('td', 'num', String(num((spec.async || {}).maxTrajectoryAgeSteps))),
        html('td', 'num', String(num(s.queueDepth))),
        html('td', 'num', String(num(s.inFlight))),
        html('td', 'num', (num(g.ready) + num(g.syncing)) + '/' + num(g.desired) + (num(g.unhealthy) ? ' (' + num(g.unhealthy) + ' unhealthy)' : '')),
        html('td', 'num', String(num(l.trained))),
        html('td', 'num', String(num(l.droppedStale))),
        html('td', 'num', String(num(l.failed))));
      body.append(tr);
    });
  }

  /* Samples of the selected run, newest last; rates come from the sample
     closest to RATE_WINDOW_MS before each one. */
  function record(stats) {
    var h = history.get(stats.runId);
    if (!h) { h = []; history.set(stats.runId, h); }
    var last = h[h.length - 1];
    if (last && last.t === stats.sampledAtMs) return h;
    var busy = stats.generatorBusy.map(function (g) { return g.ratio; });
    var sample = {
      t: stats.sampledAtMs,
      tokensTrained: num(stats.ledger.tokensTrained),
      tokensGenerated: num(stats.totals.tokensGenerated),
      groupsTrained: num(stats.ledger.trained),
      wait: num(stats.totals.trainerWaitSeconds),
      running: stats.phase === 'Running',
      generatorBusy: busy.length ? busy.reduce(function (a, b) { return a + b; }, 0) / busy.length : undefined,
      queueDepth: num(stats.queueDepth),
      inFlight: num(stats.inFlight),
      capacity: num(stats.capacityGroups),
    };
    var base = null;
    for (var i = h.length - 1; i >= 0; i--) { base = h[i]; if (sample.t - h[i].t >= RATE_WINDOW_MS) break; }
    if (base && sample.t > base.t) {
      var dt = (sample.t - base.t) / 1000;
      sample.tokensTrainedRate = Math.max(0, (sample.tokensTrained - base.tokensTrained) / dt);
      sample.tokensGeneratedRate = Math.max(0, (sample.tokensGenerated - base.tokensGenerated) / dt);
      sample.groupsRate = Math.max(0, (sample.groupsTrained - base.groupsTrained) / dt);
      if (sample.running && base.running) sample.trainerBusy = Math.min(1, Math.max(0, 1 - (sample.wait - base.wait) / dt));
    }
    // Generators report their busy ratio per health-check interval (often
    // shorter than a poll apart): averaged over the same window as the rates.
    var recent = h.filter(function (p) { return sample.t - p.t < RATE_WINDOW_MS && p.generatorBusyRaw !== undefined; })
      .map(function (p) { return p.generatorBusyRaw; });
    sample.generatorBusyRaw = sample.generatorBusy;
    if (sample.generatorBusy !== undefined) {
      recent.push(sample.generatorBusy);
      sample.generatorBusy = recent.reduce(function (a, b) { return a + b; }, 0) / recent.length;
    }
    h.push(sample);
    if (h.length > HISTORY_POINTS) h.splice(0, h.length - HISTORY_POINTS);
    return h;
  }

  function tile(label, value, bad) {
    var t = html('div', 'tile');
    t.append(html('div', 'k', label), html('div', bad ? 'v bad' : 'v', value));
    return t;
  }

  function renderRun(stats, h) {
    var latest = h[h.length - 1] || {};
    text(byId('run-title'), stats.runId);
    var phase = byId('run-phase');
    phase.className = 'phase ' + stats.phase;
    text(phase, stats.phase);
    byId('run-sim').hidden = !stats.simulated;
    text(byId('run-message'), stats.message || '');
    var count = stats.age.count;
    var maxAge = undefined;
    stats.age.buckets.forEach(function (b) { if (b.count > 0) maxAge = b.le === null ? Infinity : b.le; });
    var k = stats.maxTrajectoryAgeSteps;
    var tiles = byId('tiles');
    tiles.replaceChildren(
      tile('step', stats.trainerStep + ' / ' + stats.maxSteps),
      tile('policy version', String(stats.policyVersion)),
      tile('bound k', String(k)),
      tile('mean age', count > 0 ? (stats.age.sum / count).toFixed(2) : '-'),
      tile('max age', maxAge === undefined ? '-' : maxAge === Infinity ? '>64' : (maxAge <= 4 ? '' : '\\u2264') + maxAge, maxAge !== undefined && maxAge > k && (maxAge <= 4 || maxAge === k)),
      tile('dropped stale', String(stats.ledger.droppedStale), stats.ledger.droppedStale > 0),
      tile('tokens/s trained', latest.tokensTrainedRate === undefined ? '-' : compact(latest.tokensTrainedRate)),
      tile('groups/s trained', latest.groupsRate === undefined ? '-' : latest.groupsRate.toFixed(2)),
      tile('trainer busy', pct(latest.trainerBusy)),
      tile('generators busy', pct(latest.generatorBusy)));
    drawAge(byId('chart-age'), stats);
    // The last five minutes at most, from the first sample on.
    var t0 = h.length ? Math.max(h[0].t, h[h.length - 1].t - 300000) : 0;
    drawLines(byId('chart-throughput'), byId('legend-throughput'), h, t0, [
      { key: 'tokensGeneratedRate', name: 'generated tokens/s', color: COLOR.c1 },
      { key: 'tokensTrainedRate', name: 'trained tokens/s', color: COLOR.c2 },
    ], { format: compact });
    drawLines(byId('chart-utilisation'), byId('legend-utilisation'), h, t0, [
      { key: 'trainerBusy', name: 'trainer busy', color: COLOR.c2 },
      { key: 'generatorBusy', name: 'generators busy (mean, 10 s)', color: COLOR.c1 },
    ], { yMax: 1, format: pct });
    drawLines(byId('chart-queue'), byId('legend-queue'), h, t0, [
      { key: 'queueDepth', name: 'finished, waiting for the trainer', color: COLOR.c3 },
      { key: 'inFlight', name: 'in flight', color: COLOR.c4 },
      { key: 'capacity', name: 'capacity', color: COLOR.axis, dash: '4 3' },
    ], { format: compact });
  }

  /* Charts are drawn in the element's own pixel size (so text is never
     stretched); W and H are set by frame() before each drawing. */
  var W = 420, H = 190, PAD = { l: 44, r: 10, t: 10, b: 24 };

  function frame(node, yMax, format) {
    W = Math.max(200, Math.round(node.clientWidth || 420));
    H = Math.max(120, Math.round(node.clientHeight || 190));
    node.replaceChildren();
    node.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    var yTicks = ticksFor(yMax);
    for (var i = 0; i <= yTicks; i++) {
      var v = yMax * i / yTicks;
      var y = H - PAD.b - (H - PAD.t - PAD.b) * i / yTicks;
      node.append(svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, stroke: i === 0 ? COLOR.axis : COLOR.grid, 'stroke-width': 1 }));
      node.append(svg('text', { x: PAD.l - 6, y: y + 4, 'text-anchor': 'end' }, format(v)));
    }
  }

  /* niceMax gives 1, 2 or 5 times a power of ten: 5, 4 or 5 ticks keep the labels round. */
  function ticksFor(yMax) {
    var m = yMax / Math.pow(10, Math.floor(Math.log10(yMax)));
    return Math.abs(m - 2) < 1e-9 ? 4 : 5;
  }

  function niceMax(x) {
    if (!(x > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(x)));
    var m = x / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  function drawLines(node, legend, h, t0, series, opts) {
    var values = [];
    series.forEach(function (s) { h.forEach(function (p) { if (typeof p[s.key] === 'number') values.push(p[s.key]); }); });
    var yMax = opts.yMax || niceMax(Math.max.apply(null, values.concat([0])));
    frame(node, yMax, opts.format);
    var t1 = h.length ? h[h.length - 1].t : t0 + 1;
    var x = function (t) { return PAD.l + (W - PAD.l - PAD.r) * (t - t0) / Math.max(1, t1 - t0); };
    var y = function (v) { return H - PAD.b - (H - PAD.t - PAD.b) * Math.min(v, yMax) / yMax; };
    node.append(svg('text', { x: PAD.l, y: H - 6 }, clock(t0)));
    node.append(svg('text', { x: W - PAD.r, y: H - 6, 'text-anchor': 'end' }, clock(t1)));
    var summary = [];
    legend.replaceChildren();
    series.forEach(function (s) {
      var pts = h.filter(function (p) { return typeof p[s.key] === 'number'; })
        .map(function (p) { return x(p.t).toFixed(1) + ',' + y(p[s.key]).toFixed(1); });
      if (pts.length) {
        var line = svg('polyline', { points: pts.join(' '), fill: 'none', stroke: s.color, 'stroke-width': 1.8, 'stroke-linejoin': 'round', 'data-series': s.key });
        if (s.dash) line.setAttribute('stroke-dasharray', s.dash);
        node.append(line);
      }
      var last = h.length ? h[h.length - 1][s.key] : undefined;
      var item = html('span');
      var swatch = html('i');
      swatch.style.background = s.color;
      item.append(swatch, s.name + ': ' + (typeof last === 'number' ? opts.format(last) : '-'));
      legend.append(item);
      summary.push(s.name + ' ' + (typeof last === 'number' ? opts.format(last) : 'no data'));
    });
    node.setAttribute('aria-label', summary.join('; '));
  }

  function drawAge(node, stats) {
    var buckets = stats.age.buckets;
    var k = stats.maxTrajectoryAgeSteps;
    var counts = buckets.map(function (b) { return b.count; });
    var yMax = niceMax(Math.max.apply(null, counts.concat([0])));
    frame(node, yMax, compact);
    var n = Math.max(1, buckets.length);
    var slot = (W - PAD.l - PAD.r) / n;
    var lower = -1;
    var summary = [];
    buckets.forEach(function (b, i) {
      var label = b.le === null ? '>' + lower : b.le - lower === 1 ? String(b.le) : '\u2264' + b.le;
      var over = b.le === null ? lower >= k : lower + 1 > k;
      var hgt = (H - PAD.t - PAD.b) * b.count / yMax;
      var bx = PAD.l + i * slot + slot * 0.15;
      var rect = svg('rect', { x: bx.toFixed(1), y: (H - PAD.b - hgt).toFixed(1), width: (slot * 0.7).toFixed(1), height: hgt.toFixed(1), fill: over ? COLOR.bad : COLOR.c1, 'data-le': b.le === null ? '+Inf' : b.le, 'data-count': b.count });
      rect.append(svg('title', {}, 'age ' + label + ': ' + b.count + ' groups'));
      node.append(rect);
      node.append(svg('text', { x: (bx + slot * 0.35).toFixed(1), y: H - 8, 'text-anchor': 'middle' }, label));
      if (b.count > 0) summary.push('age ' + label + ': ' + b.count);
      lower = b.le === null ? lower : b.le;
    });
    var kIndex = buckets.findIndex(function (b) { return b.le !== null && b.le >= k; });
    if (kIndex >= 0) {
      var kx = PAD.l + (kIndex + 1) * slot;
      node.append(svg('line', { x1: kx, x2: kx, y1: PAD.t, y2: H - PAD.b, stroke: COLOR.bad, 'stroke-dasharray': '4 3', 'stroke-width': 1.2 }));
      node.append(svg('text', { x: kx + 3, y: PAD.t + 10 }, 'k = ' + k));
    }
    text(byId('age-count'), stats.age.count + ' groups served');
    node.setAttribute('aria-label', summary.length ? summary.join('; ') : 'no batches served yet');
  }

  function setConnection(ok, message) {
    var c = byId('conn');
    c.className = ok ? 'conn' : 'conn error';
    text(c, message);
  }

  function poll() {
    getJson('/v1/runs').then(function (body) {
      var runs = body.runs || [];
      selected = chooseRun(runs);
      renderRuns(runs);
      byId('run-detail').hidden = selected === null;
      if (selected === null) return;
      return getJson('/v1/runs/' + encodeURIComponent(selected) + '/stats').then(function (stats) {
        if (stats.runId !== selected) return;
        renderRun(stats, record(stats));
      });
    }).then(function () {
      setConnection(true, 'live \\u00b7 updated ' + clock(Date.now()));
    }, function (err) {
      setConnection(false, 'cannot reach the control plane: ' + (err && err.message ? err.message : err));
    }).then(function () {
      polls++;
      document.body.dataset.polls = String(polls);
      setTimeout(poll, intervalMs);
    });
  }

  window.addEventListener('hashchange', function () { selected = hashRun() || selected; });
  text(byId('interval'), String(intervalMs));
  poll();
})();
`;

const BODY = `
<header><h1>Tandem \u2014 runs</h1><span id="conn" class="conn">connecting\u2026</span></header>
<main>
  <section aria-labelledby="runs-heading">
    <h2 id="runs-heading">Runs</h2>
    <p id="no-runs" class="empty" hidden>No runs yet. Submit one with <code>tandem runs submit -f run.yaml</code>.</p>
    <table id="runs-table" hidden>
      <thead><tr><th>run</th><th>phase</th><th class="num">step</th><th class="num">version</th><th class="num">k</th>
        <th class="num">queue</th><th class="num">in flight</th><th class="num">generators</th>
        <th class="num">trained</th><th class="num">dropped stale</th><th class="num">failed</th></tr></thead>
      <tbody id="runs-body"></tbody>
    </table>
  </section>
  <section id="run-detail" aria-labelledby="run-heading" hidden>
    <h2 id="run-heading">Run <span id="run-title"></span> <span id="run-phase" class="phase"></span>
      <span id="run-sim" class="badge" hidden>simulated</span> <span id="run-message" class="empty"></span></h2>
    <div id="tiles" class="tiles"></div>
    <div class="charts">
      <figure><figcaption>Trajectory age at consumption <span>(steps; <span id="age-count"></span>)</span></figcaption>
        <svg id="chart-age" class="chart" role="img" aria-label="no data"></svg>
        <div class="legend"><span><i class="sw-ok"></i>within the bound</span><span><i class="sw-bad"></i>beyond k</span></div></figure>
      <figure><figcaption>Throughput <span>(tokens per second, 10 s window)</span></figcaption>
        <svg id="chart-throughput" class="chart" role="img" aria-label="no data"></svg><div id="legend-throughput" class="legend"></div></figure>
      <figure><figcaption>Utilisation <span>(share of time busy, 10 s window)</span></figcaption>
        <svg id="chart-utilisation" class="chart" role="img" aria-label="no data"></svg><div id="legend-utilisation" class="legend"></div></figure>
      <figure><figcaption>Rollout queue <span>(prompt groups)</span></figcaption>
        <svg id="chart-queue" class="chart" role="img" aria-label="no data"></svg><div id="legend-queue" class="legend"></div></figure>
    </div>
  </section>
</main>
<footer>Refreshes every <span id="interval"></span> ms from <code>/v1/runs</code> and <code>/v1/runs/{id}/stats</code>.
  Prometheus metrics: <a href="/metrics">/metrics</a>. Simulated runs are labelled simulated.</footer>
`;

function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/** The whole page. */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tandem \u2014 status</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-polls="0">${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

/**
 * Content-Security-Policy of the page: its own inline script and style (by
 * hash) and requests to the same origin, nothing else.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  // Only the one <style> element; the script colours legend swatches through
  // CSSOM (element.style), which style-src does not restrict.
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
