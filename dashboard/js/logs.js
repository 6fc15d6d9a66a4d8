// The Logs page: the request log and the service log searched through `/api/v1/logs`. The filters
// live in the URL hash (`#logs?status=error&model=ranker&start=…&end=…`), so a link opens the page
// pre-filtered (the charts do that on a click). Pages of records are appended with "Load older"
// (the server's next_cursor); a row opens to show its whole record; the latency column sorts the
// loaded rows; "Export JSON lines" downloads every matching record (format=jsonl). The search
// form, paging and row details work as paging.js's `CursorSearch` has them.

import * as api from './api.js';
import { PALETTE } from './charts.js';
import { clock, dateTime, millis } from './format.js';
import { el, fieldList } from './dom.js';
import { CursorSearch } from './paging.js';

const COMMON = ['start', 'end', 'request_id', 'q', 'limit'];
const ONLY = {
  requests: ['model', 'version', 'pipeline', 'status', 'user'],
  service: ['level'],
};
/** Hash keys in the order they are written; `kind` and `sort` are the page's own. */
const HASH_KEYS = ['kind', 'start', 'end', 'model', 'version', 'pipeline', 'status', 'request_id', 'user', 'level', 'q', 'limit', 'sort'];
const SORTS = ['', 'latency', 'latency-asc'];

const RANGE_NAMES = { 900: 'last 15 min', 3600: 'last hour', 21600: 'last 6 hours' };

/** JSON text pretty-printed; anything else as it is. */
export function pretty(text) {
  if (text == null) return '';
  if (typeof text !== 'string') return JSON.stringify(text, null, 2);
  const t = text.trim();
  if (t.startsWith('{') || t.startsWith('[')) {
    try {
      return JSON.stringify(JSON.parse(t), null, 2);
    } catch {
      // not JSON after all
    }
  }
  return text;
}

/** `text` on one line, cut to `n` characters. */
export function excerpt(text, n = 90) {
  if (!text) return '';
  const one = String(text).replace(/\s+/g, ' ').trim();
  return one.length > n ? one.slice(0, n - 1) + '…' : one;
}

function statusClass(status) {
  const s = Number(status);
  if (s >= 500) return 'bad';
  if (s >= 400) return 'warn';
  if (s >= 200 && s < 300) return 'ok';
  return '';
}

/** The `#logs?…` hash of a filter object (empty values left out). */
export function logsHash(filters) {
  const p = new URLSearchParams();
  for (const k of HASH_KEYS) {
    const v = filters[k];
    if (v != null && String(v).trim() !== '' && !(k === 'kind' && v === 'requests')) p.set(k, String(v).trim());
  }
  const q = p.toString();
  return q ? `#logs?${q}` : '#logs';
}

/** A link to the other log around a record's time: its request's events, or an event's request
 *  (also the Audit page's link to an action's request). */
export function crossHash(kind, requestId, timeMs) {
  const t = Math.floor(Number(timeMs) / 1000);
  const f = { kind, request_id: requestId };
  if (Number.isFinite(t)) {
    f.start = String(t - 60);
    f.end = String(t + 60);
  }
  return logsHash(f);
}

export class LogsPage extends CursorSearch {
  /** `range()`: the header's time range in seconds (the default window). */
  constructor({ range }) {
    super({ form: 'logs-form', table: 'logs-table', error: 'logs-error', more: 'logs-more' });
    this.range = range;
    this.exportLink = document.getElementById('logs-export');
    this.kind = 'requests';
    this.sort = '';

    for (const b of document.querySelectorAll('#logs-kind button')) {
      b.addEventListener('click', () => {
        this.setKind(b.dataset.kind);
        this.submit();
      });
    }
    // A link cannot send the bearer token: when signed in, the export is fetched and saved.
    this.exportLink.addEventListener('click', async (ev) => {
      if (!api.token()) return;
      ev.preventDefault();
      try {
        const url = URL.createObjectURL(await api.download(this.exportLink.href));
        const a = document.createElement('a');
        a.href = url;
        a.download = 'recserve-logs.jsonl';
        a.click();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) {
        this.errorBox.textContent = String(err.message || err);
      }
    });
    document.getElementById('logs-reset').addEventListener('click', () => this.go('#logs'));
  }

  setPipelines(names) {
    const list = document.getElementById('logs-pipelines');
    list.textContent = '';
    for (const n of names) list.append(el('option', { value: n }));
  }

  setKind(kind) {
    this.kind = kind === 'service' ? 'service' : 'requests';
    for (const b of document.querySelectorAll('#logs-kind button')) b.classList.toggle('active', b.dataset.kind === this.kind);
    for (const label of this.form.querySelectorAll('label[data-kinds]')) label.hidden = label.dataset.kinds !== this.kind;
    document.getElementById('logs-title').textContent = this.kind === 'service' ? 'Service events' : 'Requests';
  }

  /** The filters in the form (the hash's keys). */
  filters() {
    const f = { kind: this.kind, sort: this.kind === 'requests' ? this.sort : '' };
    const data = new FormData(this.form);
    for (const k of [...COMMON, ...ONLY[this.kind]]) f[k] = String(data.get(k) ?? '').trim();
    return f;
  }

  hash(filters) {
    return logsHash(filters);
  }

  /** Opens the page with the hash's parameters: fills the form and loads the first page. */
  open(params) {
    this.setKind(params.get('kind') || 'requests');
    this.sort = SORTS.includes(params.get('sort')) ? params.get('sort') : '';
    for (const k of [...COMMON, ...ONLY.requests, ...ONLY.service]) {
      const input = this.form.elements.namedItem(k);
      if (input) input.value = params.get(k) ?? '';
    }
    this.load();
  }

  /** The header's range changed: reload when the window follows it. */
  rangeChanged() {
    if (!String(new FormData(this.form).get('start') || '').trim()) this.load();
  }

  /** The server parameters of the form: absolute start and end (the header's range by default). */
  serverParams() {
    const f = this.filters();
    const now = Math.floor(Date.now() / 1000);
    const p = new URLSearchParams();
    p.set('kind', this.kind);
    p.set('start', f.start || String(now - this.range()));
    p.set('end', f.end || String(now + 1));
    for (const k of ['request_id', ...ONLY[this.kind], 'q', 'limit']) if (f[k]) p.set(k, f[k]);
    return p;
  }

  describeWindow(p, f) {
    const show = (v) => (/^\d+(\.\d+)?$/.test(v) ? dateTime(Number(v) * 1000).slice(0, 19) : v);
    const text = f.start ? `${show(p.get('start'))} – ${f.end ? show(p.get('end')) : 'now'}` : `${RANGE_NAMES[this.range()] || `last ${this.range()} s`} (header range)`;
    document.getElementById('logs-window').textContent = text;
  }

  fetchRecords(params) {
    return api.logs(params);
  }

  async load() {
    const p = this.serverParams();
    this.describeWindow(p, this.filters());
    const exportParams = new URLSearchParams(p);
    exportParams.delete('limit');
    exportParams.set('format', 'jsonl');
    this.exportLink.href = api.logsUrl(exportParams);
    this.table.dataset.kind = this.kind;
    this.renderHead();
    await this.search(p);
  }

  renderHead() {
    const head = this.table.tHead;
    head.textContent = '';
    const tr = el('tr');
    if (this.kind === 'service') {
      for (const h of ['time', 'level', 'target', 'message', 'request id']) tr.append(el('th', { text: h }));
    } else {
      for (const h of ['time', 'request id', 'model / version', 'pipeline', 'status']) tr.append(el('th', { text: h }));
      const arrow = { '': '', latency: ' ↓', 'latency-asc': ' ↑' }[this.sort];
      const button = el('button', { type: 'button', class: 'sort', id: 'logs-sort-latency', title: 'sort the loaded rows by latency', text: `latency${arrow}` });
      button.addEventListener('click', () => {
        this.sort = SORTS[(SORTS.indexOf(this.sort) + 1) % SORTS.length];
        // Keep the hash in step without a reload: the rows are already here.
        history.replaceState(null, '', logsHash(this.filters()));
        this.renderHead();
        this.renderBody();
      });
      tr.append(el('th', { class: 'num', 'aria-sort': this.sort ? (this.sort === 'latency' ? 'descending' : 'ascending') : 'none' }, button), el('th', { text: 'error' }));
    }
    head.append(tr);
  }

  sorted() {
    if (this.kind !== 'requests' || !this.sort) return this.records;
    const sign = this.sort === 'latency' ? -1 : 1;
    return [...this.records].sort((a, b) => sign * (Number(a.latency_ms) - Number(b.latency_ms)));
  }

  renderBody() {
    const body = this.table.tBodies[0];
    body.textContent = '';
    const columns = this.kind === 'service' ? 5 : 7;
    this.table.dataset.loaded = String(this.records.length);
    const more = this.cursor ? ', more older' : '';
    document.getElementById('logs-count').textContent = `${this.records.length} record${this.records.length === 1 ? '' : 's'} loaded${more}`;
    if (!this.records.length) {
      body.append(el('tr', {}, el('td', { class: 'muted', colspan: String(columns), text: { loading: 'Loading…', error: 'No records: the search failed.' }[this.table.dataset.state] || 'No records match.' })));
      return;
    }
    for (const r of this.sorted()) {
      const row = this.kind === 'service' ? this.serviceRow(r) : this.requestRow(r);
      row.addEventListener('click', (ev) => this.toggle(ev, r));
      body.append(row);
      if (this.expanded.has(r)) {
        row.classList.add('open');
        const detail = this.kind === 'service' ? this.serviceDetail(r) : this.requestDetail(r);
        body.append(el('tr', { class: 'logdetail' }, el('td', { colspan: String(columns) }, detail)));
      }
    }
  }

  requestRow(r) {
    const tr = el('tr', {
      class: 'logrow',
      title: 'click to show the whole record',
      data: { requestId: r.request_id ?? '', status: String(r.status ?? ''), pipeline: r.pipeline ?? '', model: r.model ?? '', latency: String(r.latency_ms), time: String(r.time_ms) },
    });
    const model = r.model ? `${r.model}${r.version ? ` v${r.version}` : ''}` : '–';
    tr.append(
      el('td', { class: 'time', text: clock(r.time_ms), title: dateTime(r.time_ms) }),
      el('td', { class: 'rid' }, el('a', { href: crossHash('service', r.request_id, r.time_ms), title: 'the service events of this request', text: r.request_id })),
      el('td', { text: model }),
      el('td', { text: r.pipeline || '–' }),
      el('td', {}, el('span', { class: `badge ${statusClass(r.status)}`, text: String(r.status ?? '–') })),
      el('td', { class: 'num', text: millis(r.latency_ms) }),
      el('td', { class: 'err', text: excerpt(r.error), title: r.error || null }),
    );
    return tr;
  }

  serviceRow(r) {
    const level = String(r.level || '').toUpperCase();
    const tr = el('tr', { class: 'logrow', title: 'click to show the whole record', data: { level, requestId: r.request_id ?? '', time: String(r.time_ms) } });
    tr.append(
      el('td', { class: 'time', text: clock(r.time_ms), title: dateTime(r.time_ms) }),
      el('td', {}, el('span', { class: `badge level ${level}`, text: level || '–' })),
      el('td', { class: 'target', text: r.target || '' }),
      el('td', { class: 'msg', text: excerpt(r.message, 160), title: r.message || null }),
      el('td', { class: 'rid' }, r.request_id ? el('a', { href: crossHash('requests', r.request_id, r.time_ms), title: 'the request of this event', text: r.request_id }) : null),
    );
    return tr;
  }

  requestDetail(r) {
    const { dl, add } = fieldList();
    add('request id', r.request_id);
    add('time', dateTime(r.time_ms));
    add('replica', r.replica);
    add('model', r.model);
    add('version', r.version);
    add('arm', r.arm);
    add('pipeline', r.pipeline);
    add('user (pseudonym)', r.user ? el('code', { text: r.user }) : null);
    add('user', r.raw_user);
    add('status', r.status);
    add('latency', millis(r.latency_ms));
    add('error', r.error ? el('span', { class: 'err', text: r.error }) : null);
    add('service events', el('a', { href: crossHash('service', r.request_id, r.time_ms), text: 'the events of this request →' }));
    const box = el('div', { class: 'detail' }, dl);
    const stages = Array.isArray(r.stages) ? r.stages : [];
    if (stages.length) box.append(el('h4', { text: 'stages' }), this.stageBars(stages, Number(r.latency_ms)));
    box.append(el('h4', { text: 'input' }), el('pre', { class: 'json input', text: pretty(r.input) || '(not captured)' }));
    box.append(el('h4', { text: 'output' }), el('pre', { class: 'json output', text: pretty(r.output) || '(none)' }));
    return box;
  }

  stageBars(stages, latency) {
    const total = Math.max(latency || 0, stages.reduce((s, [, ms]) => s + Number(ms || 0), 0)) || 1;
    const list = el('div', { class: 'stagebars' });
    stages.forEach(([name, ms], i) => {
      const share = Math.max(0, Number(ms) / total);
      list.append(
        el('span', { class: 'stage-name', text: name }),
        el('span', { class: 'stage-track' }, el('i', { style: `width:${(share * 100).toFixed(1)}%;background:${PALETTE[i % PALETTE.length]}` })),
        el('span', { class: 'stage-ms', text: millis(ms) }),
      );
    });
    return list;
  }

  serviceDetail(r) {
    const { dl, add } = fieldList();
    add('time', dateTime(r.time_ms));
    add('replica', r.replica);
    add('level', r.level);
    add('target', r.target);
    add('request', r.request_id ? el('a', { href: crossHash('requests', r.request_id, r.time_ms), text: `${r.request_id} →` }) : null);
    const box = el('div', { class: 'detail' }, dl);
    box.append(el('h4', { text: 'message' }), el('pre', { class: 'message', text: r.message || '' }));
    const fields = pretty(r.fields);
    if (fields && fields !== '{}') box.append(el('h4', { text: 'fields' }), el('pre', { class: 'json fields', text: fields }));
    return box;
  }
}
