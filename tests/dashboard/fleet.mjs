// Browser check of the dashboard's Fleet page against a recserve that knows a Prometheus
// (--prometheus-url) scraping the replicas; for tests that start such a fleet themselves.
//
//   node tests/dashboard/fleet.mjs BASE_URL [MIN_INSTANCES]
//
// Opens BASE_URL/#fleet in headless Chromium (Debian's, CHROMIUM, default /usr/bin/chromium;
// `npm ci` in tests/dashboard first), waits until every fleet chart has data points, and checks:
// the header shows /api/v1/fleet's replica, store and evaluator ("this replica" highlighted
// exactly when it holds the lease) and its Prometheus; charts, not a message; the requests/s,
// p99, error ratio, CPU and memory charts each with a series per instance (at least
// MIN_INSTANCES, default 1) plus "all replicas"; no console error, failed or external request.
// RECSERVE_TOKEN: a token to sign in with, when the server enforces authentication.
// SCREENSHOT: a path for a screenshot of the page. Prints one JSON line; exits 1 on a failure.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const [base, minArg] = process.argv.slice(2);
const MIN_INSTANCES = Number(minArg || 1);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PANELS = ['fleet_requests', 'fleet_p99', 'fleet_errors', 'fleet_cpu', 'fleet_memory'];

async function main() {
  assert.ok(base, 'usage: node tests/dashboard/fleet.mjs BASE_URL [MIN_INSTANCES]');
  const headers = process.env.RECSERVE_TOKEN ? { Authorization: `Bearer ${process.env.RECSERVE_TOKEN}` } : {};
  const answer = await fetch(`${base}/api/v1/fleet`, { headers });
  const text = await answer.text();
  assert.equal(answer.status, 200, `/api/v1/fleet: ${answer.status} ${text}`);
  const fleet = JSON.parse(text).data;
  assert.ok(fleet.prometheus, `the server knows no Prometheus: ${JSON.stringify(fleet)}`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  const problems = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    if (process.env.RECSERVE_TOKEN) {
      await page.addInitScript((t) => sessionStorage.setItem('recserve.token', t), process.env.RECSERVE_TOKEN);
    }
    page.on('console', (m) => m.type() === 'error' && problems.push(`console error: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()} for ${r.url()}`));
    page.on('request', (r) => !r.url().startsWith(base) && !r.url().startsWith('data:') && problems.push(`external request: ${r.url()}`));

    await page.goto(`${base}/#fleet`, { waitUntil: 'load' });
    await page
      .waitForFunction(
        // Data on every chart, from every instance: Prometheus may have scraped one replica
        // before the other, so a chart can first show one instance only.
        ([ids, min]) => ids.every((id) => {
          const c = document.querySelector(`#fleet-grid .panel[data-panel="${id}"]`);
          const instances = c
            ? [...c.querySelectorAll('.legend > span')].filter((s) => s.firstChild?.nextSibling?.textContent !== 'all replicas').length
            : 0;
          return c && Number(c.dataset.points) > 0 && c.querySelector('canvas') && instances >= min;
        }),
        [PANELS, MIN_INSTANCES],
        { timeout: 30_000 },
      )
      .catch(async () => {
        const state = await page.evaluate(() => ({
          message: document.querySelector('#fleet-message').dataset.state,
          text: document.querySelector('#fleet-message p').textContent,
          banner: document.querySelector('#banner').textContent,
          panels: [...document.querySelectorAll('#fleet-grid .panel')].map((c) => `${c.dataset.panel}=${c.dataset.points}`),
        }));
        throw new Error(`fleet charts without data: ${JSON.stringify(state)}; ${problems.join('; ')}`);
      });
    const shown = await page.evaluate(() => ({
      info: document.querySelector('#fleet-info').dataset.state,
      replica: document.querySelector('#fleet-replica b').textContent,
      store: document.querySelector('#fleet-store b').textContent,
      evaluator: document.querySelector('#fleet-evaluator b').textContent,
      self: document.querySelector('#fleet-evaluator').classList.contains('self'),
      prometheus: document.querySelector('#fleet-prometheus b').textContent,
      message: document.querySelector('#fleet-message').dataset.state,
      gridVisible: getComputedStyle(document.querySelector('#fleet-grid')).display !== 'none',
      series: Object.fromEntries(
        [...document.querySelectorAll('#fleet-grid .panel')].map((c) => [c.dataset.panel, [...c.querySelectorAll('.legend > span')].map((s) => s.firstChild.nextSibling.textContent)]),
      ),
    }));
    assert.equal(shown.info, 'done', JSON.stringify(shown));
    assert.equal(shown.replica, fleet.replica || 'unnamed');
    assert.equal(shown.store, fleet.store);
    assert.equal(shown.prometheus, fleet.prometheus);
    if (fleet.evaluator) {
      assert.ok(shown.evaluator.startsWith(fleet.evaluator.holder), `evaluator ${shown.evaluator} vs ${JSON.stringify(fleet.evaluator)}`);
      assert.equal(shown.self, !!fleet.evaluator.this_replica, '"this replica" highlighted exactly when it holds the lease');
    }
    assert.equal(shown.message, 'charts', JSON.stringify(shown));
    assert.ok(shown.gridVisible, 'the charts are visible');
    for (const id of PANELS) {
      const names = shown.series[id] || [];
      assert.ok(names.includes('all replicas'), `${id}: an "all replicas" series: ${names}`);
      assert.ok(names.filter((n) => n !== 'all replicas').length >= MIN_INSTANCES, `${id}: a series per instance (at least ${MIN_INSTANCES}): ${names}`);
    }
    if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
    assert.deepEqual(problems, [], 'no console errors, failed or external requests');
    console.log(JSON.stringify({ ok: true, fleet, series: shown.series }));
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.log(JSON.stringify({ ok: false, error: String(err && err.message ? err.message : err) }));
  process.exit(1);
});
