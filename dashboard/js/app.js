// recserve's dashboard: pages of charts drawn from the query API with the PromQL of
// queries.json (shared with the Grafana dashboard), the bottleneck report, the model repository,
// the page of a model and of each of its versions (model.js), the scenarios, a form that calls
// /v1/recommend, the Fleet page (fleet.js), the Deployments page (deployments.js), the Alerts
// page (alerts.js), the Logs page (logs.js) and the Audit page (audit.js), behind a sign-in form
// when the server enforces authentication. Hash routing (`#page`, `#models/NAME`,
// `#models/NAME/versions/V`, `#logs?filters`, `#audit?filters` or `#alerts?expr=…`; a leading
// `#/` is accepted too), a time range, auto-refresh. A click on a point of a latency or error
// chart (panels with a "logs" hint in queries.json) opens the Logs page for that time bucket.

import * as api from './api.js';
import { ChartPanel, PALETTE, legendName, pickOptions } from './charts.js';
import { bytes, percent, reqps, seconds, short } from './format.js';
import { AlertsPage } from './alerts.js';
import { AuditPage } from './audit.js';
import { DeploymentsPage } from './deployments.js';
import { FleetPage } from './fleet.js';
import { LogsPage, logsHash } from './logs.js';
import { ModelPage, modelHash } from './model.js';

const REFRESH_MS = 5000;
const RANGES = { 900: 5, 3600: 15, 21600: 60 }; // range seconds → step seconds
// `model` is the page of one model or version (#models/NAME[/versions/V]); the nav marks Models.
const PAGES = ['overview', 'fleet', 'stages', 'models', 'model', 'pipelines', 'try', 'alerts', 'logs', 'audit', 'deployments'];

const state = {
  page: 'overview',
  range: Number(localStorage.getItem('recserve.range')) || 900,
  auto: true,
  sections: new Map(), // section id → {section, panels: [ChartPanel]}
  timer: null,
  busy: false,
  scenarios: null,
  logs: null, // LogsPage
  alerts: null, // AlertsPage
  audit: null, // AuditPage
  deployments: null, // DeploymentsPage
  model: null, // ModelPage
  fleet: null, // FleetPage
};
if (!RANGES[state.range]) state.range = 900;

const $ = (sel) => document.querySelector(sel);

/** PromQL of queries.json with the template variables of the embedded dashboard substituted. */
export function substitute(expr) {
  return expr.replaceAll('$instance', '.*');
}

function setStatus(text) {
  $('#status').textContent = text;
}

function showError(err) {
  const banner = $('#banner');
  if (err) {
    banner.hidden = false;
    banner.textContent = String(err.message || err);
  } else {
    banner.hidden = true;
    banner.textContent = '';
  }
}

function td(text, cls) {
  const e = document.createElement('td');
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function link(href, text) {
  const a = document.createElement('a');
  a.href = href;
  a.textContent = text;
  return a;
}

function key(metric, names) {
  return names.map((n) => metric[n] ?? '').join('\u0000');
}

// ---- charts -------------------------------------------------------------------------------

function buildSections(spec) {
  for (const section of spec.sections) {
    const grid = document.querySelector(`.grid[data-section="${section.id}"]`);
    if (!grid) continue;
    const panels = section.panels.map((p) => new ChartPanel(p, pickOptions(p, openLogsAt)));
    panels.forEach((p) => grid.append(p.card));
    state.sections.set(section.id, { section, panels });
  }
}

/** Draws a ChartPanel from its targets' range queries, through `query` (the query API's
 *  query_range, or another of its shape: the fleet's). */
async function drawPanel(panel, start, end, step, query = api.queryRange) {
  const xs = [];
  for (let t = start; t <= end; t += step) xs.push(t);
  const index = new Map(xs.map((t, i) => [t, i]));
  const results = await Promise.all(
    panel.panel.targets.map((t) => query(substitute(t.expr), start, end, step)),
  );
  const series = [];
  results.forEach((result, ti) => {
    const target = panel.panel.targets[ti];
    for (const r of result) {
      const values = new Array(xs.length).fill(null);
      for (const [t, v] of r.values) {
        const i = index.get(Math.round(Number(t)));
        const n = Number(v);
        if (i !== undefined && Number.isFinite(n)) values[i] = n;
      }
      series.push({ name: legendName(target.legend, r.metric), values, metric: r.metric });
    }
  });
  series.sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
  panel.update(xs, series);
}

/** The header's time range as query_range parameters, aligned to the step. */
function timeWindow() {
  const step = RANGES[state.range];
  const end = Math.floor(Date.now() / 1000 / step) * step;
  return { start: end - state.range, end, step };
}

/** Draws `panels` over the header's time range; a panel that fails says why, and the first
 *  failure is thrown once all are done. */
async function drawPanels(panels, query = api.queryRange) {
  const { start, end, step } = timeWindow();
  const jobs = panels.map((p) =>
    drawPanel(p, start, end, step, query).catch((err) => {
      p.fail(String(err.message || err));
      throw err;
    }),
  );
  const outcomes = await Promise.allSettled(jobs);
  const failed = outcomes.find((o) => o.status === 'rejected');
  if (failed) throw failed.reason;
}

async function drawSections(ids) {
  return drawPanels(ids.flatMap((id) => state.sections.get(id)?.panels || []));
}

/** The Logs page for the time bucket around a chart's point (t ± step), with the series' model,
 *  version and pipeline labels and the panel's `logs` hint (e.g. status=error, sort=latency). */
function openLogsAt({ t, labels, panel }) {
  const step = RANGES[state.range];
  const f = { start: String(t - step), end: String(t + step) };
  for (const k of ['model', 'version', 'pipeline']) {
    if (labels[k] && labels[k] !== 'none') f[k] = labels[k];
  }
  Object.assign(f, panel.logs || {});
  location.hash = logsHash(f);
}

/** Instant values of a panel's first target, keyed by the label names `by`. */
async function instant(sectionId, panelId, by) {
  const s = state.sections.get(sectionId);
  const panel = s && s.section.panels.find((p) => p.id === panelId);
  if (!panel) return new Map();
  const result = await api.query(substitute(panel.targets[0].expr));
  return new Map(result.map((r) => [key(r.metric, by), Number(r.value[1])]));
}

// ---- exact percentiles vs bucket estimate --------------------------------------------------

async function drawPercentiles() {
  const report = await api.percentiles('60s');
  const exactWin = report.exact_window_seconds == null ? 'n/a' : `${Math.round(report.exact_window_seconds)}–${Math.round(2 * report.exact_window_seconds)} s`;
  $('#percentiles-window').textContent = `estimate: last ${Math.round(report.window_seconds)} s; exact: last ${exactWin}`;
  const body = $('#percentiles-table tbody');
  body.textContent = '';
  for (const t of (report.targets || []).filter((t) => t.count > 0)) {
    const tr = document.createElement('tr');
    tr.append(td(t.model), td(t.version), td(t.pipeline), td(String(t.count), 'num'));
    for (const q of ['p50', 'p95', 'p99', 'max']) {
      const e = t.bucket_estimate[q];
      tr.append(td(seconds(t.exact[q]), 'num'), td(e == null ? '–' : seconds(e), 'num'));
    }
    body.append(tr);
  }
}

// ---- the log writer -----------------------------------------------------------------------

async function drawLogWriter() {
  const r = `${state.range}s`;
  const one = async (expr) => {
    const result = await api.query(expr);
    return result.length ? Number(result[0].value[1]) : null;
  };
  const [committed, dropped, failed, queued] = await Promise.all([
    one(`sum(increase(recserve_log_records_committed_total[${r}]))`),
    one(`sum(increase(recserve_log_records_dropped_total[${r}]))`),
    one(`sum(increase(recserve_log_records_failed_total[${r}]))`),
    one('sum(recserve_log_queue_records)'),
  ]);
  const card = $('#logwriter');
  const whole = (v) => (v == null || !Number.isFinite(v) ? '–' : short(Math.round(v)));
  const set = (id, v, bad) => {
    const stat = $(id);
    stat.querySelector('b').textContent = whole(v);
    stat.dataset.value = v == null ? '' : String(Math.round(v));
    stat.classList.toggle('bad', !!bad);
  };
  set('#logwriter-committed', committed, false);
  set('#logwriter-dropped', dropped, dropped > 0);
  set('#logwriter-failed', failed, failed > 0);
  set('#logwriter-queue', queued, false);
  $('#logwriter-window').textContent = `over the last ${state.range / 60} min`;
  const note = $('#logwriter-note');
  if (committed == null && queued == null) {
    card.dataset.state = 'absent';
    note.className = 'muted';
    note.textContent = 'No log writer metrics: this server keeps no request or service logs (no store).';
  } else if (dropped > 0 || failed > 0) {
    card.dataset.state = 'losing';
    note.className = 'error';
    note.textContent =
      (dropped > 0 ? `${whole(dropped)} log records were dropped because the writer's queue was full. ` : '') +
      (failed > 0 ? `${whole(failed)} log records were lost to store errors.` : '');
  } else {
    card.dataset.state = 'ok';
    note.className = 'muted';
    note.textContent = 'Every log record reached the store.';
  }
}

// ---- bottleneck ---------------------------------------------------------------------------

async function drawBottleneck() {
  const report = await api.bottleneck();
  $('#bottleneck-summary').textContent = report.summary;
  $('#bottleneck-window').textContent = `last ${Math.round(report.window_seconds)} s`;
  const bar = $('#bottleneck-bar');
  bar.textContent = '';
  const body = $('#bottleneck-stages tbody');
  body.textContent = '';
  // Stages no request went through in the window have no mean: leave them out.
  (report.stages || []).filter((s) => s.mean_seconds != null).forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const seg = document.createElement('div');
    seg.style.width = `${Math.max(0, s.share * 100)}%`;
    seg.style.background = color;
    seg.title = `${s.stage} ${percent(s.share)}`;
    bar.append(seg);
    const tr = document.createElement('tr');
    const name = td(s.stage);
    const sw = document.createElement('span');
    sw.className = 'swatch';
    sw.style.background = color;
    name.prepend(sw);
    tr.append(name, td(percent(s.share), 'num'), td(seconds(s.mean_seconds), 'num'), td(seconds(s.p99_seconds), 'num'));
    body.append(tr);
  });
  const list = $('#bottleneck-findings');
  list.textContent = '';
  for (const f of report.findings || []) {
    if (f.kind === 'stage_latency') continue; // the table above says it
    const li = document.createElement('li');
    li.textContent = f.sentence;
    list.append(li);
  }
}

// ---- models -------------------------------------------------------------------------------

async function drawModels() {
  const by = ['model', 'version'];
  const [index, rows, batch, queue, memory] = await Promise.all([
    api.repositoryIndex(),
    instant('models', 'model_rows', by),
    instant('models', 'model_batch', by),
    instant('models', 'model_queue', by),
    instant('models', 'model_memory', by),
  ]);
  const body = $('#models-table tbody');
  body.textContent = '';
  if (!index.length) {
    const tr = document.createElement('tr');
    tr.append(td('No models in the repository.', 'muted'));
    tr.firstChild.colSpan = 8;
    body.append(tr);
  }
  index.sort((a, b) => a.name.localeCompare(b.name) || String(a.version).localeCompare(String(b.version)));
  for (const m of index) {
    const k = key({ model: m.name, version: m.version ?? '' }, by);
    const tr = document.createElement('tr');
    tr.dataset.model = m.name;
    tr.dataset.state = m.state ?? '';
    const st = td('');
    const badge = document.createElement('span');
    badge.className = `state ${m.state ?? ''}`;
    badge.textContent = m.state ?? '–';
    st.append(badge);
    const name = td('');
    name.append(link(modelHash(m.name), m.name));
    const version = td(m.version == null ? '–' : '');
    if (m.version != null) version.append(link(modelHash(m.name, String(m.version)), String(m.version)));
    tr.append(
      name,
      version,
      st,
      td(m.reason || '', 'muted'),
      td(short(rows.get(k)), 'num'),
      td(short(batch.get(k)), 'num'),
      td(short(queue.get(k)), 'num'),
      td(bytes(memory.get(k)), 'num'),
    );
    body.append(tr);
  }
}

// ---- pipelines ----------------------------------------------------------------------------

async function loadScenarios() {
  if (!state.scenarios) {
    try {
      state.scenarios = await api.scenarios();
    } catch (err) {
      state.scenarios = [];
      if (!String(err.message).includes(': 404')) throw err; // no pipelines configured: fine
    }
  }
  return state.scenarios;
}

async function drawPipelines() {
  const by = ['pipeline'];
  const [names, rate, p99, errors] = await Promise.all([
    loadScenarios(),
    instant('pipelines', 'pipeline_rate', by),
    instant('pipelines', 'pipeline_p99', by),
    instant('pipelines', 'pipeline_errors', by),
  ]);
  const body = $('#pipelines-table tbody');
  body.textContent = '';
  if (!names.length) {
    const tr = document.createElement('tr');
    tr.append(td('No pipelines configured (start recserve with --pipelines FILE).', 'muted'));
    tr.firstChild.colSpan = 4;
    body.append(tr);
  }
  for (const name of names) {
    const tr = document.createElement('tr');
    tr.dataset.pipeline = name;
    tr.append(td(name), td(reqps(rate.get(name)), 'num'), td(seconds(p99.get(name)), 'num'), td(percent(errors.get(name)), 'num'));
    body.append(tr);
  }
}

// ---- try it -------------------------------------------------------------------------------

async function setUpTry() {
  const select = $('#try-scenario');
  const names = await loadScenarios();
  select.textContent = '';
  for (const n of names) {
    const o = document.createElement('option');
    o.value = o.textContent = n;
    select.append(o);
  }
  if (names.includes('search')) select.value = 'search';
  const form = $('#try-form');
  const preview = () => {
    $('#try-request').textContent = JSON.stringify(tryRequest(form), null, 1);
  };
  form.addEventListener('input', preview);
  preview();
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const request = tryRequest(form);
    const button = $('#try-send');
    const error = $('#try-error');
    button.disabled = true;
    error.className = 'muted';
    error.textContent = '';
    const started = performance.now();
    try {
      const reply = await api.recommend(request);
      const ms = performance.now() - started;
      showItems(reply, ms);
    } catch (err) {
      $('#try-items tbody').textContent = '';
      $('#try-meta').textContent = '';
      error.className = 'error';
      error.textContent = String(err.message || err);
    } finally {
      button.disabled = false;
    }
  });
}

function tryRequest(form) {
  const f = new FormData(form);
  const scenario = f.get('scenario') || '';
  const request = { scenario, user_id: String(f.get('user_id') || '').trim() };
  const q = String(f.get('query') || '').trim();
  if (q && scenario === 'search') request.query = q;
  const k = Number(f.get('k'));
  if (k) request.k = k;
  const maxPrice = String(f.get('max_price') || '').trim();
  if (maxPrice) request.filters = { max_price: Number(maxPrice) };
  return request;
}

function showItems(reply, ms) {
  const body = $('#try-items tbody');
  body.textContent = '';
  (reply.items || []).forEach((it, i) => {
    const tr = document.createElement('tr');
    tr.className = 'item';
    tr.append(
      td(String(i + 1), 'muted'),
      td(it.item_id),
      td(it.title ?? ''),
      td(it.category ?? ''),
      td(it.brand ?? ''),
      td(it.price == null ? '' : Number(it.price).toFixed(2), 'num'),
      td(it.score == null ? '' : Number(it.score).toFixed(4), 'num'),
    );
    body.append(tr);
  });
  const versions = Object.entries(reply.model_versions || {})
    .map(([m, v]) => `${m} v${v}`)
    .join(', ');
  $('#try-meta').textContent =
    `${(reply.items || []).length} items in ${ms.toFixed(0)} ms · ${versions}` + (reply.cold_start ? ' · cold start' : '');
}

// ---- navigation and refresh ---------------------------------------------------------------

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  const page = state.page;
  const el = document.getElementById(`page-${page}`);
  const sections = (el.dataset.sections || '').split(' ').filter(Boolean);
  const jobs = [];
  if (sections.length) jobs.push(drawSections(sections));
  if (page === 'overview') jobs.push(drawPercentiles(), drawLogWriter());
  if (page === 'stages') jobs.push(drawBottleneck());
  if (page === 'models') jobs.push(drawModels());
  if (page === 'model') jobs.push(state.model.refresh());
  if (page === 'fleet') jobs.push(state.fleet.refresh());
  if (page === 'pipelines') jobs.push(drawPipelines());
  if (page === 'alerts') jobs.push(state.alerts.refresh());
  if (page === 'deployments') jobs.push(state.deployments.refresh());
  try {
    const outcomes = await Promise.allSettled(jobs);
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) {
      showError(failed.reason);
      console.error('dashboard refresh failed:', failed.reason);
    } else {
      showError(null);
    }
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } finally {
    state.busy = false;
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = state.auto ? setInterval(refresh, REFRESH_MS) : null;
}

/** A hash's path segments, decoded (`#models/a%2Fb/versions/1` → ['models', 'a/b', 'versions', '1']). */
function segments(path) {
  return path.split('/').map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
}

function route() {
  const [path, query] = (location.hash || '#overview').slice(1).replace(/^\//, '').split(/\?(.*)/s);
  const [page, model, sub, version] = segments(path);
  if (page === 'models' && model) {
    state.page = 'model';
    state.model.open(model, sub === 'versions' && version ? version : null);
  } else {
    state.page = PAGES.includes(page) && page !== 'model' ? page : 'overview';
  }
  const nav = state.page === 'model' ? 'models' : state.page;
  for (const p of PAGES) document.getElementById(`page-${p}`).classList.toggle('active', p === state.page);
  for (const a of document.querySelectorAll('.nav a')) a.classList.toggle('active', a.dataset.page === nav);
  if (state.page === 'fleet') state.fleet.open();
  if (state.page === 'logs') state.logs.open(new URLSearchParams(query || ''));
  if (state.page === 'alerts') state.alerts.open(new URLSearchParams(query || ''));
  if (state.page === 'audit') state.audit.open(new URLSearchParams(query || ''));
  refresh();
}

function setRange(range) {
  state.range = range;
  localStorage.setItem('recserve.range', String(range));
  for (const b of document.querySelectorAll('#range button')) b.classList.toggle('active', Number(b.dataset.range) === range);
}

// ---- sign-in (when the server enforces authentication) ---------------------------------------

let signingIn = null; // the pending sign-in, so several 401s show one form

/** Shows the sign-in form until the server accepts a token; resolves with {name, role, id}. */
function signInForm() {
  if (signingIn) return signingIn;
  signingIn = new Promise((resolve) => {
    const overlay = $('#signin');
    const form = $('#signin-form');
    const input = $('#signin-token');
    const error = $('#signin-error');
    overlay.hidden = false;
    error.textContent = '';
    input.value = '';
    input.focus();
    const submit = async (ev) => {
      ev.preventDefault();
      try {
        const identity = await api.signIn(input.value.trim());
        form.removeEventListener('submit', submit);
        overlay.hidden = true;
        input.value = '';
        signingIn = null;
        resolve(identity);
      } catch (err) {
        error.textContent = String(err.message || err);
      }
    };
    form.addEventListener('submit', submit);
  });
  return signingIn;
}

function showUser(identity) {
  $('#user').hidden = !identity;
  $('#user-name').textContent = identity ? `${identity.name} (${identity.role})` : '';
}

/** Asks for a token when the server enforces authentication and none is kept (or it is no
 *  longer accepted); when authentication is off, nothing is shown. */
async function ensureSignedIn() {
  const status = await api.authStatus();
  if (!status.enforcing) return showUser(status.identity);
  showUser(status.identity || (await signInForm()));
  api.onSignedOut(() => signInForm().then((identity) => {
    showUser(identity);
    refresh();
  }));
  $('#signout').addEventListener('click', () => {
    api.forgetToken();
    location.reload();
  });
}

async function main() {
  await ensureSignedIn();
  setRange(state.range);
  for (const b of document.querySelectorAll('#range button')) {
    b.addEventListener('click', () => {
      setRange(Number(b.dataset.range));
      if (state.page === 'logs') state.logs.rangeChanged();
      refresh();
    });
  }
  $('#autorefresh').addEventListener('change', (ev) => {
    state.auto = ev.target.checked;
    schedule();
    if (state.auto) refresh();
  });
  state.logs = new LogsPage({ range: () => state.range });
  state.alerts = new AlertsPage({
    draw: (panel) => {
      const { start, end, step } = timeWindow();
      return drawPanel(panel, start, end, step);
    },
  });
  state.deployments = new DeploymentsPage();
  state.audit = new AuditPage();
  const spec = await api.queries();
  buildSections(spec);
  state.model = new ModelPage({
    panels: spec.views.model.panels,
    draw: (panels) => drawPanels(panels),
    onPick: openLogsAt,
  });
  state.fleet = new FleetPage({ panels: spec.views.fleet.panels, draw: drawPanels });
  await setUpTry().catch((err) => showError(err));
  state.logs.setPipelines(state.scenarios || []);
  window.addEventListener('hashchange', route);
  route();
  schedule();
}

main().catch((err) => {
  showError(err);
  console.error(err);
});
