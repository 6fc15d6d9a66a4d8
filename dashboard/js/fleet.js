// The Fleet page: this replica's name, the store the replicas share, how the alert rules are
// evaluated and which replica holds the evaluation lease (this replica highlighted), from
// /api/v1/fleet; and, when the server knows a Prometheus that scrapes every replica, per-replica
// and combined charts (queries.json's `views.fleet`: requests/s with the total, p99 latency, error
// ratio, CPU and resident memory by instance) drawn from /api/v1/fleet/query_range. A server
// without the fleet API (404) or without a Prometheus (`prometheus: null`, or the fleet query's
// 503) gets a sentence saying so instead of charts: these are expected answers, shown on the
// page and kept out of the banner and the console.

import * as api from './api.js';
import { ChartPanel } from './charts.js';
import { clock } from './format.js';

const NO_FLEET_API =
  'This server has no fleet API (GET /api/v1/fleet answered 404): there is no replica, store or alert evaluator to show, ' +
  'and no Prometheus to draw the whole fleet from. The other pages show this server alone.';
const NO_PROMETHEUS =
  'No Prometheus is configured, so this page cannot see the other replicas (the other pages show this one). ' +
  'Start recserve with --prometheus-url URL, a Prometheus that scrapes every replica, to see the whole fleet.';

/** "in 12 s" / "12 s ago" for a time in milliseconds since the epoch. */
function fromNow(ms) {
  const s = Math.round((ms - Date.now()) / 1000);
  return s >= 0 ? `in ${s} s` : `${-s} s ago`;
}

export class FleetPage {
  /** `panels`: queries.json's `views.fleet.panels`; `draw(chartPanels, queryRange)` draws them
   *  over the header's time range with that query function. */
  constructor({ panels, draw }) {
    this.draw = draw;
    this.charts = panels.map((p) => new ChartPanel(p));
    this.grid = document.getElementById('fleet-grid');
    this.grid.append(...this.charts.map((c) => c.card));
    this.noApi = false; // /api/v1/fleet answered 404: not asked again until the page is opened again
  }

  open() {
    this.noApi = false;
  }

  async refresh() {
    let info = null;
    if (!this.noApi) {
      try {
        info = await api.fleet();
      } catch (err) {
        if (err.status !== 404) {
          this.showInfo(null, `GET /api/v1/fleet failed: ${err.message}`, 'error');
          this.showCharts('error', String(err.message || err));
          throw err;
        }
        this.noApi = true;
      }
    }
    if (!info) {
      this.showInfo(null, NO_FLEET_API, 'missing');
      this.showCharts('no-fleet-api', 'No charts of the whole fleet: without the fleet API this server knows no Prometheus to ask.');
      return;
    }
    this.showInfo(info, '', 'done');
    if (!info.prometheus) {
      this.showCharts('no-prometheus', NO_PROMETHEUS);
      return;
    }
    try {
      // The first chart alone first: a Prometheus that is not there answers once, not per chart.
      await this.draw(this.charts.slice(0, 1), api.fleetQueryRange);
      await this.draw(this.charts.slice(1), api.fleetQueryRange);
      this.showCharts('charts', '');
    } catch (err) {
      if (err.status === 503) {
        this.showCharts('no-prometheus', err.serverError || NO_PROMETHEUS);
        return;
      }
      this.showCharts('error', `The fleet's Prometheus (${info.prometheus}) did not answer: ${err.message || err}`);
      throw err;
    }
  }

  /** The header: `info` is /api/v1/fleet's data, or null with `note` saying why there is none. */
  showInfo(info, note, state) {
    const card = document.getElementById('fleet-info');
    card.dataset.state = state;
    const set = (id, value, { title = '', cls = '', sub = '' } = {}) => {
      const stat = document.getElementById(id);
      stat.className = `stat ${cls}`.trim();
      stat.title = title;
      stat.querySelector('b').textContent = value;
      stat.querySelector('small').textContent = sub;
      stat.dataset.value = value;
    };
    const noteEl = document.getElementById('fleet-note');
    noteEl.textContent = note;
    noteEl.className = state === 'error' ? 'error' : 'muted';
    if (!info) {
      for (const id of ['fleet-replica', 'fleet-store', 'fleet-evaluation', 'fleet-evaluator', 'fleet-prometheus']) set(id, '–');
      card.dataset.self = '';
      return;
    }
    set('fleet-replica', info.replica || 'unnamed', { sub: info.replica ? '' : 'start with --replica NAME to name it' });
    set('fleet-store', info.store || '–', { sub: info.store === 'sqlite' ? 'this replica alone' : info.store === 'mysql' ? 'shared by the replicas' : '' });
    const evaluation = { local: 'on every replica', leader: 'one replica (lease)', off: 'off' }[info.evaluation] || info.evaluation || '–';
    set('fleet-evaluation', evaluation, { sub: info.evaluation ? `evaluation: ${info.evaluation}` : '' });
    const ev = info.evaluator;
    if (ev && ev.holder) {
      const expires = Number(ev.expires_ms);
      const at = expires > 1e12 ? expires : Date.now() + expires; // absolute, or milliseconds left
      set('fleet-evaluator', ev.this_replica ? `${ev.holder} (this replica)` : ev.holder, {
        cls: ev.this_replica ? 'self' : '',
        sub: `term ${ev.term ?? '–'}, lease until ${clock(at)} (${fromNow(at)})`,
        title: 'The replica that holds the evaluation lease evaluates the alert rules and sends the notifications.',
      });
    } else {
      const none = info.evaluation === 'leader' ? 'nobody (lease free)' : info.evaluation === 'local' ? 'every replica' : 'nobody';
      set('fleet-evaluator', none, { cls: info.evaluation === 'leader' ? 'warn' : '' });
    }
    card.dataset.self = ev && ev.this_replica ? 'true' : 'false';
    set('fleet-prometheus', info.prometheus || 'none', { sub: info.prometheus ? 'the whole fleet is drawn from it' : 'only this replica is seen' });
  }

  /** Charts (`state` "charts") or a message instead of them. */
  showCharts(state, message) {
    const box = document.getElementById('fleet-message');
    box.dataset.state = state;
    box.hidden = state === 'charts';
    box.className = `card notice ${state === 'error' ? 'error' : ''}`.trim();
    box.querySelector('p').textContent = message;
    this.grid.hidden = state !== 'charts';
  }
}
