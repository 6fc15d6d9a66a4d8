// The page of one model (#models/NAME) and of one of its versions (#models/NAME/versions/V).
// Both are one view drawn with a different label filter (`viewFilter`): the model's versions
// (repository state, what each does in the deployment, latency budget, requests/s, rows/s, exact
// p99), the exact latency percentiles beside the bucket estimate (/api/v1/percentiles reports
// every target; the page keeps the filter's), and the charts of queries.json's `views.model`
// panels with `$filter` replaced: requests/s, error ratio, p50/p95/p99, the stage breakdown,
// batch sizes, queue depth and wait, memory. On the model page the series are per version; on a
// version page only that version's. A click on a latency or error point opens the logs of its
// time bucket for this model (and version).

import * as api from './api.js';
import { ChartPanel, pickOptions } from './charts.js';
import { servingOf } from './deployments.js';
import { el, emptyRow } from './dom.js';
import { reqps, seconds, short } from './format.js';

/** A label value inside a PromQL double-quoted string. */
function quote(v) {
  return String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/** The label matchers of a page: all of a model's versions (less "none", the version the
 *  recommendation API's in-flight gauge names before the pipeline picks one), or one version. */
export function viewFilter({ model, version }) {
  const m = `model="${quote(model)}"`;
  return version == null ? `${m},version!="none"` : `${m},version="${quote(version)}"`;
}

/** The hash of a model's page, or of one of its versions' pages. */
export function modelHash(model, version = null) {
  const m = `#models/${encodeURIComponent(model)}`;
  return version == null ? m : `${m}/versions/${encodeURIComponent(version)}`;
}

/** A queries.json panel with `$filter` replaced by `filter` in its targets. */
function filtered(panel, filter) {
  return { ...panel, targets: panel.targets.map((t) => ({ ...t, expr: t.expr.replaceAll('$filter', filter) })) };
}

const numeric = (a, b) => String(a).localeCompare(String(b), undefined, { numeric: true });
const td = (text, cls) => el('td', { class: cls, text });

export class ModelPage {
  /** `panels`: queries.json's `views.model.panels`; `draw(chartPanels)` draws them over the
   *  header's time range; `onPick({t, labels, panel})` opens the logs of a chart point. */
  constructor({ panels, draw, onPick }) {
    this.specs = panels;
    this.draw = draw;
    this.onPick = onPick;
    this.view = null; // {model, version (null on the model page), filter}
    this.charts = [];
    this.root = document.getElementById('page-model');
  }

  /** Shows `model` (all its versions) or its `version`; a new subject rebuilds the charts. */
  open(model, version = null) {
    if (this.view && this.view.model === model && this.view.version === version) return;
    const filter = viewFilter({ model, version });
    this.view = { model, version, filter };
    Object.assign(this.root.dataset, { model, version: version ?? '', filter });
    const crumbs = document.getElementById('model-crumbs');
    crumbs.textContent = '';
    crumbs.append(el('a', { href: '#models', text: 'Models' }), ' / ');
    if (version == null) {
      crumbs.append(el('span', { text: model }));
    } else {
      crumbs.append(el('a', { href: modelHash(model), text: model }), ' / ', el('span', { text: `version ${version}` }));
    }
    document.getElementById('model-title').textContent = version == null ? `${model}: all versions` : `${model} version ${version}`;
    document.getElementById('model-filter').textContent = filter;
    const versions = document.querySelector('#model-versions tbody');
    versions.textContent = '';
    emptyRow(versions, 7, 'Loading…');
    document.querySelector('#model-percentiles tbody').textContent = '';
    for (const c of this.charts) c.dispose();
    const labels = version == null ? { model } : { model, version };
    this.charts = this.specs.map((spec) => {
      const panel = filtered(spec, filter);
      return new ChartPanel(panel, pickOptions(panel, (pick) => this.onPick({ ...pick, labels: { ...labels, ...pick.labels } })));
    });
    document.getElementById('model-grid').append(...this.charts.map((c) => c.card));
  }

  async refresh() {
    if (!this.view) return;
    const outcomes = await Promise.allSettled([this.drawTables(this.view), this.draw(this.charts)]);
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** Instant values by version of the first target of the panel `id`, over all the model's
   *  versions (the versions table lists them on a version's page too). */
  async byVersion(id, model) {
    const spec = this.specs.find((p) => p.id === id);
    if (!spec) return new Map();
    const result = await api.query(filtered(spec, viewFilter({ model })).targets[0].expr);
    const sums = new Map();
    for (const r of result) {
      const v = Number(r.value[1]);
      if (Number.isFinite(v)) sums.set(r.metric.version, (sums.get(r.metric.version) ?? 0) + v);
    }
    return sums;
  }

  async drawTables(view) {
    const table = document.getElementById('model-versions');
    table.dataset.state = 'loading';
    const [index, deployments, report, requests, rows] = await Promise.all([
      api.repositoryIndex(),
      api.deployments(),
      api.percentiles('60s'),
      this.byVersion('model_requests', view.model),
      this.byVersion('model_rows', view.model),
    ]);
    if (this.view !== view) return; // another page was opened meanwhile
    const deployment = deployments.find((d) => d.model === view.model);
    const targets = (report.targets || []).filter((t) => t.model === view.model && t.version !== 'none');
    this.drawVersions(view, { index, deployment, targets, requests, rows });
    this.drawPercentiles(view, report, targets);
    table.dataset.state = 'done';
  }

  /** Every version known for the model: in the repository, in its deployment, or in its series. */
  drawVersions(view, { index, deployment, targets, requests, rows }) {
    const repo = new Map(index.filter((m) => m.name === view.model).map((m) => [String(m.version ?? ''), m]));
    const deployed = new Map(((deployment && deployment.versions) || []).map((v) => [String(v.version), v]));
    const names = new Set([...repo.keys(), ...deployed.keys(), ...requests.keys(), ...rows.keys(), ...targets.map((t) => t.version)]);
    names.delete('');
    names.delete('none');
    if (view.version != null) names.add(view.version);
    const body = document.querySelector('#model-versions tbody');
    body.textContent = '';
    if (!repo.size && !deployed.size && !requests.size && !rows.size && !targets.length) {
      emptyRow(body, 7, `No model named "${view.model}" in the repository, the deployments or the metrics.`);
      return;
    }
    for (const v of [...names].sort(numeric)) {
      const m = repo.get(v);
      const d = deployed.get(v);
      const retired = ((deployment && deployment.retired) || []).some((x) => String(x) === v);
      const state = m?.state || d?.state || (retired ? 'retired' : 'not loaded');
      const serving = servingOf(deployment, v);
      const p99s = targets.filter((t) => t.version === v && t.count > 0 && t.exact.p99 != null).map((t) => t.exact.p99);
      const current = v === view.version;
      body.append(
        el(
          'tr',
          { class: current ? 'version current' : 'version', data: { version: v, state } },
          el('td', {}, current ? el('b', { text: `v${v}` }) : el('a', { href: modelHash(view.model, v), text: `v${v}` })),
          el('td', {}, el('span', { class: `state ${state.replace(/ /g, '-')}`, text: state, title: m?.reason || '' })),
          el('td', {}, serving ? el('span', { class: `badge ${serving.cls}`, text: serving.text }) : el('span', { class: 'muted', text: '–' })),
          td(d && d.latency_budget_ms != null ? seconds(d.latency_budget_ms / 1000) : '–', 'num'),
          td(reqps(requests.get(v)), 'num'),
          td(short(rows.get(v)), 'num'),
          td(p99s.length ? seconds(Math.max(...p99s)) : '–', 'num'),
        ),
      );
    }
  }

  /** The exact percentiles beside the bucket estimate, per version and pipeline of the view. */
  drawPercentiles(view, report, targets) {
    const exactWin = report.exact_window_seconds == null ? 'n/a' : `${Math.round(report.exact_window_seconds)}–${Math.round(2 * report.exact_window_seconds)} s`;
    document.getElementById('model-percentiles-window').textContent = `estimate: last ${Math.round(report.window_seconds)} s; exact: last ${exactWin}`;
    const body = document.querySelector('#model-percentiles tbody');
    body.textContent = '';
    const rows = targets.filter((t) => t.count > 0 && (view.version == null || t.version === view.version));
    if (!rows.length) {
      emptyRow(body, 11, 'No requests in the exact window.');
      return;
    }
    rows.sort((a, b) => numeric(a.version, b.version) || a.pipeline.localeCompare(b.pipeline));
    for (const t of rows) {
      const tr = el('tr', { class: 'target', data: { version: t.version, pipeline: t.pipeline } }, td(`v${t.version}`), td(t.pipeline), td(String(t.count), 'num'));
      for (const q of ['p50', 'p95', 'p99', 'max']) {
        const e = t.bucket_estimate[q];
        tr.append(td(seconds(t.exact[q]), 'num'), td(e == null ? '–' : seconds(e), 'num'));
      }
      body.append(tr);
    }
  }
}
