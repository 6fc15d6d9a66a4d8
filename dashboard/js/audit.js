// The Audit page: the audit trail of control-plane actions (deployments, silences, rule reloads,
// tokens, sign-ins) read through `/api/v1/audit`, newest first. The filters (actor, action prefix,
// outcome, time range) live in the URL hash (`#audit?actor=alerting&since=24h`), like the Logs
// page's; "Load more" follows the server's next_cursor; a row opens to show the action's details
// JSON and its request id, a link to that request's service events on the Logs page. A server
// without a store (404) or a token whose role may not read the trail (403) is said plainly.

import * as api from './api.js';
import { clock, dateTime } from './format.js';
import { el, emptyRow, fieldList } from './dom.js';
import { crossHash, excerpt, pretty } from './logs.js';
import { CursorSearch } from './paging.js';

/** The time ranges of the page (seconds back from now; `all`: no start). */
const SINCE = { '1h': 3600, '24h': 86400, '7d': 604800, all: null };
const DEFAULT_SINCE = 'all';
/** The form's filters, in the hash's order, then `since`. */
const FILTERS = ['actor', 'action', 'outcome', 'limit'];
const OUTCOME_CLASS = { ok: 'ok', denied: 'warn', failed: 'bad' };
const COLUMNS = 6;

/** The `#audit?…` hash of a filter object (empty values and the default range left out). */
export function auditHash(filters) {
  const p = new URLSearchParams();
  for (const k of [...FILTERS, 'since']) {
    const v = String(filters[k] ?? '').trim();
    if (v && !(k === 'since' && v === DEFAULT_SINCE)) p.set(k, v);
  }
  const q = p.toString();
  return q ? `#audit?${q}` : '#audit';
}

export class AuditPage extends CursorSearch {
  constructor() {
    super({ form: 'audit-form', table: 'audit-table', error: 'audit-error', more: 'audit-more' });
    this.since = DEFAULT_SINCE;
    for (const b of document.querySelectorAll('#audit-since button')) {
      b.addEventListener('click', () => {
        this.setSince(b.dataset.since);
        this.submit();
      });
    }
    document.getElementById('audit-reset').addEventListener('click', () => this.go('#audit'));
  }

  setSince(since) {
    this.since = since in SINCE ? since : DEFAULT_SINCE;
    for (const b of document.querySelectorAll('#audit-since button')) b.classList.toggle('active', b.dataset.since === this.since);
  }

  /** The filters in the form (the hash's keys). */
  filters() {
    const data = new FormData(this.form);
    const f = { since: this.since };
    for (const k of FILTERS) f[k] = String(data.get(k) ?? '').trim();
    return f;
  }

  hash(filters) {
    return auditHash(filters);
  }

  /** Opens the page with the hash's parameters: fills the form and loads the first page. */
  open(params) {
    this.setSince(params.get('since') || DEFAULT_SINCE);
    for (const k of FILTERS) this.form.elements.namedItem(k).value = params.get(k) ?? '';
    this.search(this.serverParams());
  }

  /** The server parameters of the form: the range as an absolute start. */
  serverParams() {
    const f = this.filters();
    const p = new URLSearchParams();
    const back = SINCE[this.since];
    if (back) p.set('start', String(Math.floor(Date.now() / 1000) - back));
    for (const k of FILTERS) if (f[k]) p.set(k, f[k]);
    return p;
  }

  fetchRecords(params) {
    return api.audit(params);
  }

  /** The server's message, with why for a 404 (no store) or a 403 (the token's role). */
  failureText(err) {
    const msg = String(err.message || err);
    if (err.status === 404) return `This server keeps no audit trail (it runs without a store). ${msg}`;
    if (err.status === 403) return `Your token's role may not read the audit trail. ${msg}`;
    return msg;
  }

  /** The table's text when there are no rows. */
  emptyText() {
    const state = this.table.dataset.state;
    if (state === 'loading') return 'Loading…';
    if (state === 'error') return 'No audited actions: the search failed.';
    const f = this.filters();
    const filtered = FILTERS.some((k) => k !== 'limit' && f[k]) || this.since !== 'all';
    return filtered ? 'No audited actions match these filters.' : 'No audited actions yet: deployments, silences, rule reloads, tokens and sign-ins are listed here once they happen.';
  }

  renderBody() {
    const body = this.table.tBodies[0];
    body.textContent = '';
    this.table.dataset.loaded = String(this.records.length);
    const n = this.records.length;
    document.getElementById('audit-count').textContent = `${n} action${n === 1 ? '' : 's'} loaded${this.cursor ? ', more older' : ''}`;
    if (!n) return emptyRow(body, COLUMNS, this.emptyText());
    for (const r of this.records) {
      const row = this.row(r);
      row.addEventListener('click', (ev) => this.toggle(ev, r));
      body.append(row);
      if (!this.expanded.has(r)) continue;
      row.classList.add('open');
      body.append(el('tr', { class: 'logdetail auditdetail' }, el('td', { colspan: String(COLUMNS) }, this.detail(r))));
    }
  }

  row(r) {
    const tr = el('tr', {
      class: 'logrow auditrow',
      title: 'click to show the details',
      data: { id: String(r.id ?? ''), actor: r.actor, action: r.action, target: r.target ?? '', outcome: r.outcome, time: String(r.time_ms) },
    });
    tr.append(
      el('td', { class: 'time', text: clock(r.time_ms), title: dateTime(r.time_ms) }),
      el('td', { class: 'actor' }, r.actor, r.role ? el('span', { class: 'role muted', text: ` (${r.role})` }) : null),
      el('td', {}, el('code', { class: 'action', text: r.action })),
      el('td', { class: 'target', text: r.target || '' }),
      el('td', {}, el('span', { class: `badge ${OUTCOME_CLASS[r.outcome] || ''}`, text: r.outcome })),
      el('td', { class: 'reason', text: excerpt(r.reason, 120), title: r.reason || null }),
    );
    return tr;
  }

  detail(r) {
    const { dl, add } = fieldList();
    add('time', dateTime(r.time_ms));
    for (const k of ['actor', 'role', 'action', 'target', 'outcome', 'reason', 'replica']) add(k, r[k]);
    const events = r.request_id ? el('a', { class: 'request', href: crossHash('service', r.request_id, r.time_ms), title: 'the service events of this request', text: `${r.request_id} →` }) : null;
    add('request id', events || 'none (not asked for over HTTP)');
    const box = el('div', { class: 'detail' }, dl);
    box.append(el('h4', { text: 'details' }), el('pre', { class: 'json details', text: pretty(r.details) || '(none)' }));
    return box;
  }
}
