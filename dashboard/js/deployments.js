// The Deployments page: the closed loop of a model change.
//  - Deployments (/api/v1/deployments): each model's mode, arms with their traffic split,
//    versions and retired versions; buttons to promote an arm or roll back (a prompt asks the
//    reason, which the audit trail keeps) and to change a canary's share. A refused change shows
//    the server's error.
//  - Online experiments (/api/v1/experiments): a table per pipeline × model comparing its arms:
//    CTR and conversion with their 95% intervals (drawn as small bars on one scale per table),
//    revenue per request, the CTR lift against the control arm, the p-value and a verdict.
//  - Drift (/api/v1/drift): a table per model version of its inputs and its score against the
//    reference: PSI, Jensen–Shannon distance, samples against the minimum, a coloured verdict,
//    significant first.
//  - Charts of the online CTR per arm, the traffic split and the PSI per feature: queries.json's
//    "deployments" section, drawn by app.js like its other sections (and in Grafana).

import * as api from './api.js';
import { PALETTE } from './charts.js';
import { el, emptyRow } from './dom.js';
import { dateTime, short } from './format.js';


const MODES = { canary: 'warn', ab: 'info', stable: 'ok' };
const DRIFT_ORDER = { significant: 0, moderate: 1, ok: 2, insufficient_data: 3 };
const DRIFT_CLASS = { significant: 'bad', moderate: 'warn', ok: 'ok' };
const DRIFT_TEXT = { significant: 'significant', moderate: 'moderate', ok: 'ok', insufficient_data: 'insufficient data' };

const num = (v) => (v == null || !Number.isFinite(Number(v)) ? null : Number(v));
/** A count: whole below 10 000 ("1900"), shortened above ("19.6k"). */
const count = (v) => (num(v) == null ? '–' : Math.abs(num(v)) < 10000 ? String(Math.round(num(v))) : short(num(v)));

/** A rate as a percentage with two significant decimals below 10% ("4.72%", "12.3%"). */
export function rate(v) {
  const n = num(v);
  if (n == null) return '–';
  const p = n * 100;
  return `${Math.abs(p) >= 10 ? p.toFixed(1) : p.toFixed(2)}%`;
}

/** A relative change with its sign: "+12.3%", "−84.5%". */
export function lift(v) {
  const n = num(v);
  if (n == null) return '–';
  const p = n * 100;
  const text = Math.abs(p) >= 10 ? Math.abs(p).toFixed(1) : Math.abs(p).toFixed(2);
  return `${p < 0 ? '−' : '+'}${text}%`;
}

/** A p-value: three decimals, or an exponent below 0.001. */
export function pValue(v) {
  const n = num(v);
  if (n == null) return '–';
  if (n === 0) return '0';
  return n < 0.001 ? n.toExponential(1) : n.toFixed(3);
}

/** The verdict of an arm's comparison with its control (`vs_control`), on its CTR. */
export function verdict(vs) {
  if (!vs) return { key: 'control', text: 'control', cls: '' };
  if (!vs.enough_samples) return { key: 'insufficient', text: 'not enough data yet', cls: '' };
  if (!vs.significant) return { key: 'same', text: 'no real difference yet', cls: '' };
  const diff = num(vs.ctr_difference) ?? num(vs.ctr_lift) ?? 0;
  return diff < 0 ? { key: 'worse', text: 'significantly worse', cls: 'bad' } : { key: 'better', text: 'significantly better', cls: 'ok' };
}

function windowText(ms) {
  const s = Number(ms) / 1000;
  if (!Number.isFinite(s) || s <= 0) return '';
  if (s % 3600 === 0) return `last ${s / 3600} h`;
  if (s % 60 === 0) return `last ${s / 60} min`;
  return `last ${Math.round(s)} s`;
}

/** A cell with a rate, its 95% interval as a bar on [0, scale] and the interval as a tooltip. */
function intervalCell(value, interval, scale, cls) {
  const v = num(value);
  const cell = el('td', { class: `interval ${cls}` });
  const lo = interval ? num(interval[0]) : null;
  const hi = interval ? num(interval[1]) : null;
  cell.append(el('span', { class: 'value', text: rate(v) }));
  const bar = el('span', { class: 'ibar', title: lo == null ? 'no interval yet' : `95% interval ${rate(lo)} – ${rate(hi)}` });
  const at = (x) => `${Math.max(0, Math.min(100, (x / scale) * 100)).toFixed(1)}%`;
  if (lo != null && hi != null && scale > 0) {
    bar.append(el('i', { class: 'range', style: `left:${at(lo)};width:calc(${at(hi)} - ${at(lo)})` }));
  }
  if (v != null && scale > 0) bar.append(el('b', { class: 'point', style: `left:${at(v)}` }));
  cell.append(bar);
  cell.append(el('span', { class: 'range-text', text: lo == null ? '' : `${rate(lo)} – ${rate(hi)}` }));
  return cell;
}

/** The upper end of a bar scale holding every interval and value of `arms` for `key`. */
function scaleOf(arms, key) {
  let max = 0;
  for (const a of arms) {
    const iv = a[`${key}_interval`];
    for (const x of [a[key], iv && iv[1]]) if (num(x) != null) max = Math.max(max, num(x));
  }
  return max > 0 ? max * 1.05 : 0;
}

/** What `version` does in the deployment `d` (an entry of /api/v1/deployments): {text: "canary
 *  50%" | "retired" | "no traffic", cls}, or null when the model has no deployment arms (the
 *  repository decides: requests naming no version take the latest ready one). */
export function servingOf(d, version) {
  if (!d) return null;
  const arm = (d.arms || []).find((a) => String(a.version) === String(version));
  if (arm) return { text: `${arm.name} ${short(Number(arm.percent))}%`, cls: 'ok' };
  if ((d.retired || []).some((v) => String(v) === String(version))) return { text: 'retired', cls: '' };
  if (!(d.arms || []).length) return null;
  return { text: 'no traffic', cls: '' };
}

export class DeploymentsPage {
  constructor() {
    this.table = document.getElementById('deployments-table');
    this.outcome = document.getElementById('deployments-outcome');
    this.list = []; // the deployments last loaded
    this.drawn = ''; // what the deployments table shows (redrawn only when it changes)
    this.acting = false;
  }

  /** Loads everything the page shows; rejects with the first failure (after drawing the rest). */
  async refresh() {
    const deployments = this.loadDeployments();
    // Drift marks the versions that take traffic: it waits for the deployments (or their failure).
    const jobs = [deployments, this.loadExperiments(), deployments.catch(() => {}).then(() => this.loadDrift())];
    const outcomes = await Promise.allSettled(jobs);
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
  }

  // ---- deployments ----

  async loadDeployments(force = false) {
    try {
      this.list = await api.deployments();
    } catch (err) {
      this.table.dataset.state = 'error';
      throw err;
    }
    this.list.sort((a, b) => a.model.localeCompare(b.model));
    const key = JSON.stringify(this.list);
    if (force || key !== this.drawn || this.table.dataset.state !== 'done') {
      this.drawn = key;
      this.renderDeployments();
    }
    this.table.dataset.state = 'done';
  }

  renderDeployments() {
    const body = this.table.tBodies[0];
    body.textContent = '';
    const active = this.list.filter((d) => (d.arms || []).length > 1).length;
    document.getElementById('deployments-count').textContent = `${this.list.length} model${this.list.length === 1 ? '' : 's'}, ${active} with more than one arm`;
    if (!this.list.length) {
      emptyRow(body, 6, 'No models in the repository.');
      return;
    }
    for (const d of this.list) body.append(this.deploymentRow(d));
  }

  deploymentRow(d) {
    const arms = d.arms || [];
    const mode = d.mode || '';
    const modeCell = el('td', {}, mode ? el('span', { class: `badge ${MODES[mode] || ''}`, text: mode === 'ab' ? 'A/B' : mode }) : el('span', { class: 'muted', text: 'none', title: 'no deployment: the repository decides which version serves' }));
    const traffic = el('td', { class: 'traffic' });
    if (arms.length) {
      const bar = el('div', { class: 'sharebar split', title: d.description || '' });
      const names = el('div', { class: 'arms' });
      arms.forEach((a, i) => {
        const color = PALETTE[i % PALETTE.length];
        bar.append(el('div', { style: `width:${Math.max(0, Number(a.percent))}%;background:${color}` }));
        names.append(
          el(
            'span',
            { class: 'arm', data: { arm: a.name, version: String(a.version), percent: String(a.percent) } },
            el('span', { class: 'swatch', style: `background:${color}` }),
            `${a.name} v${a.version} `,
            el('b', { text: `${short(Number(a.percent))}%` }),
          ),
        );
      });
      traffic.append(bar, names);
    } else {
      traffic.append(el('span', { class: 'muted', text: 'every request: the latest ready version' }));
    }
    const versions = el('td', {}, el('span', { class: 'chips' }, ...(d.versions || []).map((v) => {
      const title = [v.reason, v.latency_budget_ms != null ? `latency budget ${v.latency_budget_ms} ms` : null].filter(Boolean).join(' · ') || null;
      return el('span', { class: 'version', data: { version: String(v.version), state: v.state || '' }, title }, `v${v.version} `, el('span', { class: `state ${v.state || ''}`, text: v.state || '–' }));
    })));
    const retired = d.retired || [];
    const retiredCell = el('td', { class: 'retired' }, retired.length ? el('span', { class: 'chips' }, ...retired.map((v) => el('span', { class: 'chip', text: `v${v}` }))) : el('span', { class: 'muted', text: '–' }));
    return el(
      'tr',
      { class: 'deployment', data: { model: d.model, mode, arms: String(arms.length), retired: retired.join(',') } },
      el('td', { class: 'name', text: d.model }),
      modeCell,
      traffic,
      versions,
      retiredCell,
      this.actions(d),
    );
  }

  actions(d) {
    const td = el('td', { class: 'actions' });
    const arms = d.arms || [];
    if (arms.length < 2) return td;
    const control = arms[0];
    for (const a of arms.slice(1)) {
      const label = d.mode === 'canary' ? `Promote v${a.version}` : `Promote ${a.name}`;
      const b = el('button', { type: 'button', class: 'plain small promote', data: { arm: a.name }, title: `POST /api/v1/deployments/${d.model}/promote: ${a.name} v${a.version} takes all the traffic`, text: label });
      b.addEventListener('click', () => {
        const body = d.mode === 'canary' ? {} : { arm: a.name };
        this.act(d.model, 'promote', body, `Promote ${d.model} ${a.name} v${a.version} to all the traffic?`);
      });
      td.append(b);
    }
    const back = el('button', { type: 'button', class: 'plain small rollback', title: `POST /api/v1/deployments/${d.model}/rollback: v${control.version} takes all the traffic again`, text: 'Roll back' });
    back.addEventListener('click', () => this.act(d.model, 'rollback', {}, `Roll ${d.model} back to ${control.name} v${control.version}?`));
    td.append(back);
    if (d.mode === 'canary' && arms[1]) {
      // novalidate: the server checks the share and says what is wrong with it.
      const form = el('form', { class: 'split', novalidate: '', title: `POST /api/v1/deployments/${d.model}/percent` });
      const input = el('input', { type: 'number', name: 'percent', min: '0', max: '100', step: 'any', value: String(arms[1].percent), 'aria-label': 'canary percent' });
      form.append(input, el('span', { class: 'muted', text: '%' }), el('button', { type: 'submit', class: 'plain small', text: 'Set canary share' }));
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const raw = input.value.trim();
        this.act(d.model, 'percent', { percent: raw === '' ? null : Number(raw) });
      });
      td.append(form);
    }
    return td;
  }

  /** Runs a deployment change; `ask`, when given, is the question of a prompt for the reason
   *  (cancel: nothing is sent). Shows the outcome above the table. */
  async act(model, action, body, ask = null) {
    if (this.acting) return;
    if (ask) {
      const reason = window.prompt(`${ask}\nReason (kept in the audit trail):`, '');
      if (reason === null) return;
      if (reason.trim()) body = { ...body, reason: reason.trim() };
    }
    this.acting = true;
    for (const b of this.table.querySelectorAll('button')) b.disabled = true;
    const box = this.outcome;
    box.hidden = false;
    box.className = 'outcome';
    box.dataset.state = 'loading';
    box.dataset.action = action;
    box.dataset.model = model;
    box.textContent = `${action}…`;
    try {
      const d = await api.deploymentAction(model, action, body);
      box.className = 'outcome ok';
      box.dataset.state = 'ok';
      const done = { promote: 'promoted', rollback: 'rolled back', percent: 'canary share set', canary: 'canary started' }[action] || action;
      box.textContent = `${model} ${done} at ${dateTime(Date.now()).slice(11, 19)}: now ${d.description || 'no deployment'}.`;
    } catch (err) {
      box.className = 'outcome error';
      box.dataset.state = 'error';
      box.textContent = '';
      box.append(el('b', { text: `${model}: ${action} refused. ` }), el('span', { class: 'message', text: String(err.message || err) }));
    } finally {
      this.acting = false;
    }
    await this.loadDeployments(true).catch(() => {});
  }

  // ---- experiments ----

  async loadExperiments() {
    const holder = document.getElementById('experiments');
    let data;
    try {
      data = await api.experiments();
    } catch (err) {
      holder.dataset.state = 'error';
      throw err;
    }
    this.renderExperiments(data);
    holder.dataset.state = 'done';
  }

  renderExperiments(data) {
    const holder = document.getElementById('experiments');
    const arms = data.arms || [];
    document.getElementById('experiments-window').textContent = `${windowText(data.window_ms)} · updated ${dateTime(data.at_ms).slice(11, 19)}`;
    holder.textContent = '';
    const groups = new Map();
    for (const a of arms) {
      const k = `${a.pipeline}\u0000${a.model}`;
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(a);
    }
    if (!groups.size) {
      holder.append(el('p', { class: 'muted', text: 'No recommendations with feedback in the window yet.' }));
      return;
    }
    const keys = [...groups.keys()].sort();
    for (const k of keys) {
      const list = groups.get(k);
      list.sort((a, b) => (a.vs_control ? 1 : 0) - (b.vs_control ? 1 : 0) || String(a.arm).localeCompare(String(b.arm)));
      const { pipeline, model } = list[0];
      const compared = list.find((a) => a.vs_control);
      const sub = compared ? `control: ${compared.vs_control.control_arm} v${compared.vs_control.control_version}` : 'one arm: nothing to compare';
      const ctrScale = scaleOf(list, 'ctr');
      const convScale = scaleOf(list, 'conversion');
      const table = el(
        'table',
        { class: 'table compact experiment', data: { pipeline, model } },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ...['arm', 'version'].map((h) => el('th', { text: h })),
            el('th', { class: 'num', text: 'impressions' }),
            el('th', { text: 'CTR (95% interval)' }),
            el('th', { text: 'conversion (95% interval)' }),
            el('th', { class: 'num', text: 'revenue/request' }),
            el('th', { class: 'num', text: 'CTR lift vs control' }),
            el('th', { class: 'num', text: 'p-value' }),
            el('th', { text: 'verdict' }),
          ),
        ),
      );
      const body = el('tbody');
      for (const a of list) {
        const vs = a.vs_control;
        const v = verdict(vs);
        const liftCell = el('td', { class: 'num lift' }, el('span', { text: vs ? lift(vs.ctr_lift) : '–' }));
        if (vs) {
          const sig = vs.conversion_significant ? 'significant' : 'not significant';
          liftCell.append(el('div', { class: `sub muted${vs.conversion_significant ? ' significant' : ''}`, text: `conv. ${lift(vs.conversion_lift)}`, title: `conversion lift ${lift(vs.conversion_lift)}: ${sig} (p-value ${pValue(vs.conversion_p_value)})` }));
        }
        const title = vs ? `z ${num(vs.z)?.toFixed(2) ?? '–'}; CTR difference ${lift(vs.ctr_difference)} points` : null;
        body.append(
          el(
            'tr',
            { class: 'arm', data: { arm: a.arm, version: String(a.version), verdict: v.key } },
            el('td', { class: 'name', text: a.arm }),
            el('td', { text: `v${a.version}` }),
            el('td', { class: 'num', text: count(a.impressions), title: `${a.requests} requests, ${a.clicks} clicks, ${a.add_to_carts} add-to-carts, ${a.purchases} purchases in the window; since start: ${a.totals?.impressions ?? '–'} impressions, ${a.totals?.clicks ?? '–'} clicks` }),
            intervalCell(a.ctr, a.ctr_interval, ctrScale, 'ctr'),
            intervalCell(a.conversion, a.conversion_interval, convScale, 'conversion'),
            el('td', { class: 'num', text: num(a.revenue_per_request) == null ? '–' : num(a.revenue_per_request).toFixed(2) }),
            liftCell,
            el('td', { class: 'num pvalue', text: vs ? pValue(vs.p_value) : '–', title }),
            el('td', { class: 'verdict' }, el('span', { class: `badge ${v.cls}`, text: v.text })),
          ),
        );
      }
      table.append(body);
      holder.append(el('div', { class: 'experiment-set', data: { pipeline, model } }, el('h4', {}, `${pipeline} · ${model} `, el('span', { class: 'muted', text: sub })), table));
    }
  }

  // ---- drift ----

  async loadDrift() {
    const holder = document.getElementById('drift');
    let list;
    try {
      list = await api.drift();
    } catch (err) {
      holder.dataset.state = 'error';
      throw err;
    }
    this.renderDrift(list);
    holder.dataset.state = 'done';
  }

  /** What version `version` of `model` does now: "canary 50%", "retired", "no traffic". */
  serving(model, version) {
    return servingOf(this.list.find((x) => x.model === model), version);
  }

  renderDrift(list) {
    const holder = document.getElementById('drift');
    holder.textContent = '';
    list.sort((a, b) => a.model.localeCompare(b.model) || Number(a.version) - Number(b.version));
    const bad = list.filter((m) => [...(m.snapshot?.features || []), m.snapshot?.score].some((f) => f && f.verdict === 'significant')).length;
    document.getElementById('drift-count').textContent = `${list.length} model version${list.length === 1 ? '' : 's'}, ${bad} with significant drift`;
    if (!list.length) {
      holder.append(el('p', { class: 'muted', text: 'No drift monitoring: no model has a reference (reference.json) or none has served yet.' }));
      return;
    }
    for (const m of list) {
      const snap = m.snapshot || {};
      const rows = (snap.features || []).map((f) => ({ ...f, role: 'feature' }));
      if (snap.score) rows.push({ ...snap.score, role: 'score' });
      rows.sort((a, b) => (DRIFT_ORDER[a.verdict] ?? 4) - (DRIFT_ORDER[b.verdict] ?? 4) || (num(b.psi) ?? -1) - (num(a.psi) ?? -1) || String(a.name).localeCompare(String(b.name)));
      const serving = this.serving(m.model, m.version);
      const head = el('h4', {}, `${m.model} v${m.version} `);
      if (serving) head.append(el('span', { class: `badge ${serving.cls}`, text: serving.text }), ' ');
      const meta = [`reference ${m.reference}`, windowText(snap.window_ms), snap.at_ms ? `updated ${dateTime(snap.at_ms).slice(11, 19)}` : null].filter(Boolean).join(' · ');
      head.append(el('span', { class: 'muted', text: meta }));
      const set = el('div', { class: 'drift-set', data: { model: m.model, version: String(m.version), reference: m.reference || '' } }, head);
      if (snap.capturing) {
        const c = snap.capturing;
        set.append(el('p', { class: 'muted capturing', text: `Capturing the reference from live traffic: ${c.requests} of ${c.target} requests. Until then nothing is compared.` }));
      }
      const table = el(
        'table',
        { class: 'table compact drift', data: { model: m.model, version: String(m.version) } },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            el('th', { text: 'feature' }),
            el('th', { text: 'kind' }),
            el('th', { class: 'num', text: 'samples / minimum' }),
            el('th', { class: 'num', text: 'missing' }),
            el('th', { class: 'num', text: 'unseen' }),
            el('th', { class: 'num', text: 'invalid' }),
            el('th', { class: 'num', text: 'PSI' }),
            el('th', { class: 'num', text: 'JS distance' }),
            el('th', { text: 'verdict' }),
          ),
        ),
      );
      const body = el('tbody');
      if (!rows.length) emptyRow(body, 9, 'No features observed yet.');
      for (const f of rows) {
        const few = num(f.n) != null && num(f.min_samples) != null && f.n < f.min_samples;
        body.append(
          el(
            'tr',
            { class: `feature ${f.role}`, data: { feature: f.name, verdict: f.verdict || '', role: f.role } },
            el('td', { class: 'name', text: f.role === 'score' ? `${f.name} (model output)` : f.name }),
            el('td', { class: 'muted', text: f.kind || '' }),
            el('td', { class: `num${few ? ' few' : ''}`, text: `${count(f.n)} / ${count(f.min_samples)}`, title: few ? 'fewer samples than the minimum: no verdict yet' : null }),
            el('td', { class: 'num', text: count(f.missing) }),
            el('td', { class: 'num', text: count(f.unseen) }),
            el('td', { class: 'num', text: count(f.invalid) }),
            el('td', { class: 'num psi', text: num(f.psi) == null ? '–' : num(f.psi).toFixed(3) }),
            el('td', { class: 'num', text: num(f.js) == null ? '–' : num(f.js).toFixed(3) }),
            el('td', {}, el('span', { class: `badge drift-verdict ${DRIFT_CLASS[f.verdict] || ''}`, text: DRIFT_TEXT[f.verdict] || f.verdict || '–' })),
          ),
        );
      }
      table.append(body);
      set.append(table);
      holder.append(set);
    }
  }
}
