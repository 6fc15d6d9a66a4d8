// One chart panel: a card with a title, a uPlot time-series chart and a legend with each series'
// latest value. uPlot is the vendored global (dashboard/vendor/uplot). A panel given `onPick`
// reports clicks on the plot area: the time of the point under the cursor and the labels of the
// series nearest to it (the dashboard opens the Logs page with them).

import { formatter } from './format.js';
import { el } from './dom.js';

export const PALETTE = ['#3d7eff', '#f28e2b', '#2ca58d', '#d64545', '#8e6bd6', '#c9a227', '#17a2b8', '#e377c2'];

/** Expands a Grafana legend format ("{{model}} v{{version}}") with a series' labels. */
export function legendName(format, metric) {
  const name = (format || '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? '');
  if (name.trim()) return name;
  const labels = Object.entries(metric).filter(([k]) => k !== '__name__');
  return labels.length ? labels.map(([k, v]) => `${k}="${v}"`).join(', ') : 'value';
}

/** The ChartPanel options of a queries.json panel: a panel with a `logs` hint calls `onPick` on
 *  a click on one of its points, and says what the click opens. */
export function pickOptions(panel, onPick) {
  if (!panel.logs) return {};
  return { onPick, pickHint: panel.logs.status === 'error' ? 'click to see the failed requests' : 'click to see the requests' };
}

export class ChartPanel {
  /** `onPick({t, labels, panel})`, when given, is called on a click on a point of the chart. */
  constructor(panel, { onPick = null, pickHint = '' } = {}) {
    this.panel = panel;
    this.onPick = onPick;
    this.series = [];
    this.fmt = formatter(panel.unit);
    this.plot = null;
    this.seriesKey = '';
    this.card = el('div', { class: 'card panel', 'data-panel': panel.id, 'data-points': '0', 'data-series': '0' });
    this.latest = el('span', { class: 'muted' });
    this.body = el('div', { class: 'chart-empty', text: 'Loading…' });
    this.legend = el('div', { class: 'legend' });
    const hint = onPick ? el('span', { class: 'pick-hint', text: pickHint || 'click to see the requests' }) : null;
    this.card.append(el('div', { class: 'card-head' }, el('h3', { text: panel.title }), hint, this.latest), this.body, this.legend);
    if (onPick) this.card.classList.add('pickable');
    this.card.title = panel.targets.map((t) => t.expr).join('\n');
  }

  /** Draws `series` ([{name, values, metric}] over the timestamps `xs`, seconds). */
  update(xs, all) {
    // Series without a single value in the range (e.g. a stage no request went through) add
    // nothing but a dash in the legend.
    const series = all.filter((s) => s.values.some((v) => v != null));
    this.series = series;
    const points = series.reduce((n, s) => n + s.values.filter((v) => v != null).length, 0);
    this.card.dataset.points = String(points);
    this.card.dataset.series = String(series.length);
    this.renderLegend(series);
    if (points === 0) {
      this.destroy();
      this.body.className = 'chart-empty';
      this.body.textContent = 'No data in this range yet';
      return;
    }
    const key = series.map((s) => s.name).join('\u0000');
    const data = [xs, ...series.map((s) => s.values)];
    if (this.plot && key === this.seriesKey) {
      this.plot.setData(data);
      return;
    }
    this.destroy();
    this.seriesKey = key;
    this.body.className = 'chart';
    this.body.textContent = '';
    const fmt = this.fmt;
    const stacked = !!this.panel.stack;
    const opts = {
      width: Math.max(200, this.body.clientWidth || 400),
      height: 190,
      legend: { show: false },
      cursor: { points: { size: 6 } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
      axes: [
        { stroke: '#6b7385', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#e2e5ea' } },
        {
          stroke: '#6b7385',
          size: (u, values) => (values ? Math.max(...values.map((v) => v.length)) * 8 + 26 : 56),
          grid: { stroke: '#eef0f3' },
          ticks: { stroke: '#e2e5ea' },
          values: (u, splits) => splits.map(fmt),
        },
      ],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.name,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          fill: stacked ? PALETTE[i % PALETTE.length] + '55' : undefined,
          spanGaps: false,
          points: { size: 4 },
          value: (u, v) => fmt(v),
        })),
      ],
    };
    if (stacked) {
      // Stack by cumulative sums (bands are not needed for an at-a-glance share view).
      for (let i = 2; i < data.length; i++) {
        data[i] = data[i].map((v, j) => (v == null ? null : v + (data[i - 1][j] ?? 0)));
      }
    }
    this.plot = new uPlot(opts, data, this.body);
    if (this.onPick) {
      const plot = this.plot;
      plot.over.addEventListener('click', () => this.pick(plot));
    }
    this.card.dataset.rendered = 'true';
    if (!this.observer) {
      this.observer = new ResizeObserver(() => {
        if (this.plot && this.body.clientWidth > 0) this.plot.setSize({ width: this.body.clientWidth, height: 190 });
      });
      this.observer.observe(this.body);
    }
  }

  /** The point under `u`'s cursor: its time and the labels of the series drawn nearest to it. */
  pick(u) {
    const idx = u.cursor.idx;
    if (idx == null || u !== this.plot) return;
    const t = u.data[0][idx];
    if (t == null) return;
    const y = u.cursor.top == null || u.cursor.top < 0 ? null : u.posToVal(u.cursor.top, 'y');
    let best = null;
    let bestDist = Infinity;
    for (let i = 1; i < u.data.length; i++) {
      const v = u.data[i][idx];
      if (v == null) continue;
      const d = y == null ? 0 : Math.abs(v - y);
      if (d < bestDist) {
        bestDist = d;
        best = i - 1;
      }
    }
    const s = best == null ? null : this.series[best];
    this.onPick({ t, labels: (s && s.metric) || {}, series: s ? s.name : null, panel: this.panel });
  }

  renderLegend(series) {
    this.legend.textContent = '';
    series.forEach((s, i) => {
      const last = [...s.values].reverse().find((v) => v != null);
      this.legend.append(
        el('span', {}, el('i', { style: `background:${PALETTE[i % PALETTE.length]}` }), s.name, el('b', { text: this.fmt(last) })),
      );
    });
    if (series.length === 1) {
      const last = [...series[0].values].reverse().find((v) => v != null);
      this.latest.textContent = last == null ? '' : `now ${this.fmt(last)}`;
    } else {
      this.latest.textContent = '';
    }
  }

  fail(message) {
    this.destroy();
    this.card.dataset.points = '0';
    this.body.className = 'chart-empty';
    this.body.textContent = message;
  }

  /** Destroys the chart and stops watching its size (a page that rebuilds its panels). */
  dispose() {
    this.destroy();
    if (this.observer) this.observer.disconnect();
    this.observer = null;
    this.card.remove();
  }

  destroy() {
    if (this.plot) {
      this.plot.destroy();
      this.plot = null;
      this.seriesKey = '';
    }
  }
}
