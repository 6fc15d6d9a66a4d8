// The Alerts page: the firing and pending alerts (/api/v1/alerts), a history chart of the ALERTS
// series, the notification log, the rule groups with their health (/api/v1/rules) and a reload
// button, the Alertmanager v2 silences with a form to create one (prefilled from an alert's
// labels) and a button to expire one, and a graph of a rule's expression over the header's time
// range (`#alerts?expr=…&title=…`), so an operator sees what crossed the threshold.

import * as api from './api.js';
import { ChartPanel } from './charts.js';
import { dateTime, seconds, short } from './format.js';
import { el, emptyRow } from './dom.js';

const HISTORY_PANEL = {
  id: 'alerts_history',
  title: 'Alerts over time (ALERTS, stacked)',
  unit: 'short',
  stack: true,
  targets: [{ expr: 'count by (alertname, alertstate) (ALERTS)', legend: '{{alertname}} {{alertstate}}' }],
};

/** Milliseconds since the epoch of an RFC 3339 time; null for none (or Go's zero time). */
export function parseTime(text) {
  if (text == null || text === '') return null;
  const ms = typeof text === 'number' ? text : Date.parse(text);
  if (!Number.isFinite(ms) || ms <= 0) return null;
  return ms;
}

function span(ms) {
  const s = Math.abs(ms) / 1000;
  if (s < 1) return 'now';
  if (s < 59.5) return `${Math.round(s)} s`;
  const mins = Math.round(s / 60);
  if (mins < 60) return `${mins} min`;
  if (mins < 1440) return mins % 60 ? `${Math.floor(mins / 60)} h ${mins % 60} min` : `${mins / 60} h`;
  const hours = Math.round(s / 3600);
  return hours % 24 ? `${Math.floor(hours / 24)} d ${hours % 24} h` : `${hours / 24} d`;
}

/** A time relative to `now`: "12 s ago", "in 2 h", "just now"; "never" for none. */
export function relTime(ms, now = Date.now()) {
  if (ms == null) return 'never';
  const d = ms - now;
  if (Math.abs(d) < 1000) return 'just now';
  return d < 0 ? `${span(d)} ago` : `in ${span(d)}`;
}

/** Seconds of a duration like "90m", "2h", "1.5d", "1w"; null when it does not parse. */
export function parseDuration(text) {
  const m = String(text || '').trim().match(/^(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)$/);
  if (!m) return null;
  const n = Number(m[1]) * { s: 1, m: 60, min: 60, h: 3600, d: 86400, w: 604800 }[m[2]];
  return n > 0 ? n : null;
}

function unquote(v) {
  if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) {
    if (v[0] === '"') {
      try {
        return JSON.parse(v);
      } catch {
        // not a JSON string: strip the quotes only
      }
    }
    return v.slice(1, -1);
  }
  return v;
}

/** Matcher lines (`name=value`, `name!=value`, `name=~regex`, `name!~regex`, values optionally
 *  quoted) → {matchers: [{name, value, isRegex, isEqual}], errors: [line messages]}. */
export function parseMatchers(text) {
  const matchers = [];
  const errors = [];
  String(text || '')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim().replace(/,$/, '');
      if (!line || line.startsWith('#')) return;
      const m = line.match(/^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*)$/);
      if (!m) {
        errors.push(`line ${i + 1}: "${line}" is not name=value, name!=value, name=~regex or name!~regex`);
        return;
      }
      const op = m[2];
      matchers.push({ name: m[1], value: unquote(m[3].trim()), isRegex: op.endsWith('~'), isEqual: op.startsWith('=') });
    });
  return { matchers, errors };
}

/** A matcher as text (`name=~"value"`). */
export function matcherText(m) {
  const op = (m.isEqual === false ? '!' : '=') + (m.isRegex ? '~' : '');
  const eq = op === '=' ? '=' : op === '!' ? '!=' : op === '=~' ? '=~' : '!~';
  return `${m.name}${eq}${JSON.stringify(String(m.value ?? ''))}`;
}

/** The `#alerts?…` hash that opens the graph of `expr`. */
export function exprHash(expr, title) {
  const p = new URLSearchParams();
  p.set('expr', expr.trim());
  if (title) p.set('title', title);
  return `#alerts?${p.toString()}`;
}

/** Splits an alerting expression `left OP number` at its last top-level comparison, so the graph
 *  can draw the compared value with the threshold (an expression that holds only the samples
 *  over the threshold would draw nothing before it fires). null when the expression has no such
 *  shape (set operators, `bool`, a comparison with a series). */
export function splitThreshold(expr) {
  const text = expr.trim();
  let depth = 0;
  let quote = null;
  let last = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (depth === 0) {
      if (/[a-z]/i.test(c) && (i === 0 || !/[\w:]/.test(text[i - 1]))) {
        const word = text.slice(i).match(/^[a-zA-Z_]+/)[0];
        if (['and', 'or', 'unless', 'bool'].includes(word)) return null;
        i += word.length - 1;
        continue;
      }
      const two = text.slice(i, i + 2);
      if (['>=', '<=', '==', '!='].includes(two)) {
        last = { at: i, op: two };
        i++;
      } else if (c === '>' || c === '<') {
        last = { at: i, op: c };
      }
    }
  }
  if (!last) return null;
  const left = text.slice(0, last.at).trim();
  const right = text.slice(last.at + last.op.length).trim();
  if (!left || !/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(right)) return null;
  return { left, op: last.op, threshold: Number(right) };
}

export class AlertsPage {
  /** `draw(panel)`: draws a ChartPanel over the header's time range (app.js drawPanel). */
  constructor({ draw }) {
    this.draw = draw;
    this.rulesByName = new Map();
    this.graph = null; // {expr, title, panel}
    this.history = new ChartPanel(HISTORY_PANEL);
    document.getElementById('alerts-history').replaceWith(this.history.card);
    this.history.card.id = 'alerts-history';
    this.form = document.getElementById('silence-form');
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.createSilence();
    });
    document.getElementById('silence-clear').addEventListener('click', () => {
      this.form.reset();
      this.showFormMessage('', '');
    });
    document.getElementById('rules-reload').addEventListener('click', () => this.reload());
    document.getElementById('alerts-graph-close').addEventListener('click', () => {
      location.hash = '#alerts';
    });
  }

  /** Opens the page with the hash's parameters: `expr` (and `title`) show the graph. */
  open(params) {
    const expr = (params.get('expr') || '').trim();
    const card = document.getElementById('alerts-graph');
    if (!expr) {
      card.hidden = true;
      if (this.graph) this.graph.panel.destroy();
      this.graph = null;
      return;
    }
    const title = params.get('title') || 'Expression';
    if (this.graph && this.graph.expr === expr && this.graph.title === title) return;
    if (this.graph) this.graph.panel.destroy();
    const split = splitThreshold(expr);
    const targets = split
      ? [
          { expr: split.left, legend: '' },
          { expr: `vector(${split.threshold})`, legend: `threshold ${split.op} ${split.threshold}` },
        ]
      : [{ expr, legend: '' }];
    const panel = new ChartPanel({ id: 'alert_expr', title: split ? `${title}: value and threshold` : title, unit: 'short', targets });
    document.getElementById('alerts-graph-title').textContent = title;
    document.getElementById('alerts-graph-expr').textContent = expr;
    document.getElementById('alerts-graph-error').textContent = '';
    const holder = document.getElementById('alerts-graph-panel');
    holder.textContent = '';
    holder.append(panel.card);
    card.dataset.expr = expr;
    card.dataset.split = split ? 'threshold' : 'whole';
    card.hidden = false;
    this.graph = { expr, title, panel };
    card.scrollIntoView({ block: 'nearest' });
  }

  /** Loads everything the page shows; rejects with the first failure (after drawing the rest). */
  async refresh() {
    const jobs = [this.loadRulesAndAlerts(), this.loadSilences(), this.loadNotifications(), this.drawHistory(), this.drawGraph()];
    const outcomes = await Promise.allSettled(jobs);
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async drawHistory() {
    try {
      await this.draw(this.history);
    } catch (err) {
      this.history.fail(String(err.message || err));
      throw err;
    }
  }

  async drawGraph() {
    if (!this.graph) return;
    const { panel } = this.graph;
    const error = document.getElementById('alerts-graph-error');
    try {
      await this.draw(panel);
      error.textContent = '';
    } catch (err) {
      panel.fail('The query failed');
      error.textContent = String(err.message || err);
    }
  }

  // ---- alerts and rules ----

  async loadRulesAndAlerts() {
    const table = document.getElementById('rules-table');
    const alertsTable = document.getElementById('alerts-table');
    let groups;
    let alerts;
    try {
      [groups, alerts] = await Promise.all([api.rules(), api.alerts()]);
    } catch (err) {
      table.dataset.state = alertsTable.dataset.state = 'error';
      throw err;
    }
    this.rulesByName = new Map();
    for (const g of groups) for (const r of g.rules || []) if (r.type === 'alerting') this.rulesByName.set(r.name, r);
    this.renderRules(groups);
    this.renderAlerts(alerts);
    table.dataset.state = alertsTable.dataset.state = 'done';
  }

  renderAlerts(alerts) {
    const body = document.getElementById('alerts-table').tBodies[0];
    body.textContent = '';
    const order = { firing: 0, pending: 1 };
    alerts.sort(
      (a, b) =>
        (order[a.state] ?? 2) - (order[b.state] ?? 2) ||
        String(a.labels.alertname).localeCompare(String(b.labels.alertname)) ||
        (parseTime(a.activeAt) ?? 0) - (parseTime(b.activeAt) ?? 0),
    );
    const firing = alerts.filter((a) => a.state === 'firing').length;
    document.getElementById('alerts-count').textContent = `${firing} firing, ${alerts.length - firing} pending`;
    if (!alerts.length) {
      emptyRow(body, 7, 'No alert is firing or pending.');
      return;
    }
    const now = Date.now();
    for (const a of alerts) {
      const labels = a.labels || {};
      const ann = a.annotations || {};
      const name = labels.alertname || '';
      const active = parseTime(a.activeAt);
      const chips = el('span', { class: 'chips' });
      for (const [k, v] of Object.entries(labels)) if (k !== 'alertname') chips.append(el('span', { class: 'chip', text: `${k}=${v}` }));
      const actions = el('td', { class: 'actions' });
      const rule = this.rulesByName.get(name);
      if (rule && rule.query) actions.append(el('a', { class: 'graph', href: exprHash(rule.query, name), title: 'draw the rule expression over the time range', text: 'graph' }));
      if (ann.runbook_url) actions.append(el('a', { class: 'runbook', href: ann.runbook_url, target: '_blank', rel: 'noopener noreferrer', text: 'runbook ↗' }));
      const silence = el('button', { type: 'button', class: 'plain small silence', title: 'prefill a silence with these labels', text: 'Silence' });
      silence.addEventListener('click', () => this.prefillSilence(labels));
      actions.append(silence);
      body.append(
        el(
          'tr',
          { class: 'alert', data: { alertname: name, state: a.state || '' } },
          el('td', {}, el('span', { class: `badge ${a.state === 'firing' ? 'bad' : 'warn'}`, text: a.state || '–' })),
          el('td', { class: 'name', text: name }),
          el('td', {}, chips),
          el('td', { class: 'summary', text: ann.summary || '', title: ann.description || null }),
          el('td', { class: 'num', text: short(Number(a.value)), title: String(a.value ?? '') }),
          el('td', { class: 'since', text: relTime(active, now), title: active ? dateTime(active) : null }),
          actions,
        ),
      );
    }
  }

  renderRules(groups) {
    const body = document.getElementById('rules-table').tBodies[0];
    body.textContent = '';
    const count = groups.reduce((n, g) => n + (g.rules || []).length, 0);
    const bad = groups.reduce((n, g) => n + (g.rules || []).filter((r) => r.health === 'err').length, 0);
    document.getElementById('rules-count').textContent = `${groups.length} group${groups.length === 1 ? '' : 's'}, ${count} rule${count === 1 ? '' : 's'}${bad ? `, ${bad} failing` : ''}`;
    if (!groups.length) {
      emptyRow(body, 7, 'No rule groups loaded (start recserve with --rules FILE, or without --no-default-rules).');
      return;
    }
    const now = Date.now();
    for (const g of groups) {
      const last = parseTime(g.lastEvaluation);
      const meta = [g.file, g.interval ? `every ${seconds(Number(g.interval))}` : null, `evaluated ${relTime(last, now)}`, g.evaluationTime != null ? `in ${seconds(Number(g.evaluationTime))}` : null]
        .filter(Boolean)
        .join(' · ');
      body.append(el('tr', { class: 'group', data: { group: g.name } }, el('td', { colspan: '7' }, el('b', { text: g.name }), el('span', { class: 'muted', text: `  ${meta}` }))));
      for (const r of g.rules || []) {
        const lastEval = parseTime(r.lastEvaluation);
        const health = r.health || 'unknown';
        const type = r.type === 'recording' ? 'record' : 'alert';
        const exprCell = el('td', { class: 'exprcell' }, el('code', { class: 'expr', text: (r.query || '').trim() }));
        if (r.lastError) exprCell.append(el('div', { class: 'err lasterror', text: r.lastError }));
        const nAlerts = (r.alerts || []).length;
        const stateText = r.type === 'alerting' ? `${r.state || 'inactive'}${nAlerts ? ` (${nAlerts})` : ''}` : '–';
        const stateClass = { firing: 'bad', pending: 'warn' }[r.state] || '';
        body.append(
          el(
            'tr',
            { class: 'rule', data: { rule: r.name, group: g.name, health, type: r.type || '', lastEvaluation: lastEval ? String(lastEval) : '' } },
            el('td', { class: 'name' }, el('span', { class: 'kind', text: type }), document.createTextNode(r.name)),
            el('td', {}, el('span', { class: `badge health ${health === 'ok' ? 'ok' : health === 'err' ? 'bad' : ''}`, text: health })),
            el('td', {}, r.type === 'alerting' ? el('span', { class: `badge ${stateClass}`, text: stateText }) : el('span', { class: 'muted', text: stateText })),
            el('td', { class: 'lasteval', text: relTime(lastEval, now), title: lastEval ? dateTime(lastEval) : null }),
            el('td', { class: 'num', text: r.evaluationTime == null ? '–' : seconds(Number(r.evaluationTime)) }),
            exprCell,
            el('td', { class: 'actions' }, r.query ? el('a', { class: 'graph', href: exprHash(r.query, r.name), title: 'draw the expression over the time range', text: 'graph' }) : null),
          ),
        );
      }
    }
  }

  async reload() {
    const button = document.getElementById('rules-reload');
    const box = document.getElementById('rules-reload-outcome');
    button.disabled = true;
    box.hidden = false;
    box.className = 'outcome';
    box.dataset.state = 'loading';
    box.textContent = 'Reloading…';
    try {
      const r = await api.reloadRules();
      box.textContent = '';
      if (r.ok) {
        box.className = 'outcome ok';
        box.dataset.state = 'ok';
        box.textContent = `Rules reloaded at ${dateTime(Date.now()).slice(11, 19)}: ${r.data.groups ?? '?'} groups, ${r.data.rules ?? '?'} rules.`;
      } else {
        box.className = 'outcome error';
        box.dataset.state = 'error';
        const errors = r.errors.length ? r.errors : [r.error];
        box.append(el('b', { text: `Reload refused (HTTP ${r.status}); the rules in use stay.` }));
        const list = el('ul', { class: 'errors' });
        for (const e of errors) list.append(el('li', {}, el('code', { text: e })));
        box.append(list);
      }
    } catch (err) {
      box.className = 'outcome error';
      box.dataset.state = 'error';
      box.textContent = String(err.message || err);
    } finally {
      button.disabled = false;
    }
    await this.loadRulesAndAlerts().catch(() => {});
  }

  // ---- silences ----

  async loadSilences() {
    const error = document.getElementById('silences-error');
    try {
      const list = await api.silences();
      error.textContent = '';
      this.renderSilences(list);
    } catch (err) {
      error.textContent = String(err.message || err);
      throw err;
    }
  }

  renderSilences(list) {
    const table = document.getElementById('silences-table');
    const body = table.tBodies[0];
    body.textContent = '';
    const order = { active: 0, pending: 1, expired: 2 };
    list.sort((a, b) => (order[a.status?.state] ?? 3) - (order[b.status?.state] ?? 3) || (parseTime(b.endsAt) ?? 0) - (parseTime(a.endsAt) ?? 0));
    const active = list.filter((s) => s.status?.state === 'active').length;
    document.getElementById('silences-count').textContent = `${active} active, ${list.length} in all`;
    table.dataset.count = String(list.length);
    if (!list.length) {
      emptyRow(body, 6, 'No silences.');
      return;
    }
    const now = Date.now();
    for (const s of list) {
      const st = s.status?.state || 'unknown';
      const starts = parseTime(s.startsAt);
      const ends = parseTime(s.endsAt);
      const chips = el('span', { class: 'chips' });
      for (const m of s.matchers || []) chips.append(el('span', { class: 'chip', text: matcherText(m) }));
      const actions = el('td', { class: 'actions' });
      if (st !== 'expired') {
        const b = el('button', { type: 'button', class: 'plain small expire', text: 'Expire', title: `DELETE /api/v2/silence/${s.id}` });
        b.addEventListener('click', () => this.expire(s.id, b));
        actions.append(b);
      }
      const endText = st === 'pending' ? `starts ${relTime(starts, now)}, ends ${relTime(ends, now)}` : st === 'expired' ? `ended ${relTime(ends, now)}` : `ends ${relTime(ends, now)}`;
      body.append(
        el(
          'tr',
          { class: 'silence', data: { id: s.id, state: st }, title: `silence ${s.id}` },
          el('td', {}, el('span', { class: `badge ${{ active: 'ok', pending: 'warn' }[st] || ''}`, text: st })),
          el('td', {}, chips),
          el('td', { text: s.createdBy || '–' }),
          el('td', { class: 'comment', text: s.comment || '' }),
          el('td', { class: 'since', text: endText, title: `${starts ? dateTime(starts) : '?'} – ${ends ? dateTime(ends) : '?'}` }),
          actions,
        ),
      );
    }
  }

  prefillSilence(labels) {
    const f = this.form.elements;
    f.namedItem('matchers').value = Object.entries(labels)
      .map(([k, v]) => `${k}=${/^[\w.:/-]*$/.test(v) ? v : JSON.stringify(v)}`)
      .join('\n');
    this.showFormMessage('', '');
    this.form.scrollIntoView({ block: 'nearest' });
    const next = f.namedItem('createdBy').value.trim() ? f.namedItem('comment') : f.namedItem('createdBy');
    next.focus();
  }

  showFormMessage(error, ok) {
    document.getElementById('silence-error').textContent = error;
    const created = document.getElementById('silence-created');
    created.textContent = ok;
    if (!ok) delete created.dataset.id;
  }

  async createSilence() {
    const data = new FormData(this.form);
    const { matchers, errors } = parseMatchers(data.get('matchers'));
    const duration = parseDuration(data.get('duration'));
    if (duration == null) errors.push(`duration: "${data.get('duration')}" is not a duration such as 30m, 2h or 1d`);
    if (errors.length) {
      this.showFormMessage(errors.join('\n'), '');
      return;
    }
    const now = Date.now();
    const silence = {
      matchers,
      startsAt: new Date(now).toISOString(),
      endsAt: new Date(now + duration * 1000).toISOString(),
      createdBy: String(data.get('createdBy') || '').trim(),
      comment: String(data.get('comment') || '').trim(),
    };
    const button = document.getElementById('silence-create');
    button.disabled = true;
    try {
      const id = await api.createSilence(silence);
      this.showFormMessage('', `Silence ${id} created.`);
      document.getElementById('silence-created').dataset.id = id;
    } catch (err) {
      this.showFormMessage(String(err.message || err), '');
    } finally {
      button.disabled = false;
    }
    await this.loadSilences().catch(() => {});
  }

  async expire(id, button) {
    button.disabled = true;
    const error = document.getElementById('silences-error');
    try {
      await api.expireSilence(id);
      error.textContent = '';
    } catch (err) {
      error.textContent = String(err.message || err);
      button.disabled = false;
    }
    await this.loadSilences().catch(() => {});
  }

  // ---- notifications ----

  async loadNotifications() {
    const data = await api.notifications();
    const receivers = data.receivers || [];
    const head = document.getElementById('notifications-receivers');
    head.textContent = receivers.length
      ? receivers
          .map((r) => {
            const t = r.target || {};
            const name = t.receiver || t.url || String(t);
            return `${name}: ${r.sent ?? 0} sent, ${r.failed ?? 0} failed${r.dropped ? `, ${r.dropped} dropped` : ''}${r.queued ? `, ${r.queued} queued` : ''}`;
          })
          .join(' · ')
      : 'no receivers';
    const table = document.getElementById('notifications-table');
    const body = table.tBodies[0];
    body.textContent = '';
    const log = [...(data.log || [])].sort((a, b) => (parseTime(b.time) ?? 0) - (parseTime(a.time) ?? 0)).slice(0, 25);
    table.dataset.count = String((data.log || []).length);
    if (!log.length) {
      emptyRow(
        body,
        6,
        receivers.length ? 'No notifications sent yet.' : 'No notifications: no receiver is configured (start recserve with --alert-webhook or --alertmanager-url).',
      );
      return;
    }
    const now = Date.now();
    for (const n of log) {
      const t = parseTime(n.time);
      const outcome = el('td', {}, el('span', { class: `badge ${{ sent: 'ok', failed: 'bad', dropped: 'bad' }[n.outcome] || ''}`, text: n.outcome || '–' }));
      if (n.error) outcome.append(el('div', { class: 'err', text: n.error }));
      body.append(
        el(
          'tr',
          { class: 'notification', data: { outcome: n.outcome || '', status: n.status || '' }, title: `${n.target || ''}\n${n.groupKey || ''}` },
          el('td', { class: 'since', text: relTime(t, now), title: t ? dateTime(t) : null }),
          el('td', { text: n.receiver || n.target || '–' }),
          el('td', {}, el('span', { class: `badge ${n.status === 'firing' ? 'bad' : n.status === 'resolved' ? 'ok' : ''}`, text: n.status || '–' })),
          el('td', { class: 'num', text: String(n.alerts ?? '–') }),
          el('td', { class: 'num', text: String(n.attempt ?? '–') }),
          outcome,
        ),
      );
    }
  }
}
