// Browser test of recserve's embedded dashboard, plus the Grafana dashboard's queries against a
// live server. Starts `recserve demo` (simulated shoppers), lets traffic flow, then:
//  1. checks deploy/grafana/recserve-dashboard.json (structure, generated from queries.json) and
//     runs every panel query, $instance substituted, through /api/v1/query and /api/v1/query_range;
//  2. opens the dashboard in headless Chromium (Debian's, never a downloaded browser) and checks
//     each page: charts drawn with data points, models READY, the bottleneck sentence, Try it
//     returning items, no console errors, no failed requests. Screenshots go to SCREENSHOT_DIR.
//
// Env: RECSERVE_BIN (the binary), CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR
// (default bench/results/dashboard), TRAFFIC_SECS (default 15).

import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { checkGrafana, grafanaQueries } from './grafana.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.RECSERVE_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'release/recserve');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(ROOT, process.env.SCREENSHOT_DIR || 'bench/results/dashboard');
const TRAFFIC_SECS = Number(process.env.TRAFFIC_SECS || 15);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('[dashboard test]', ...a);

let passed = 0;
async function check(name, fn) {
  await fn();
  passed++;
  log('ok', name);
}

function startDemo(dataDir) {
  const child = spawn(
    BIN,
    ['demo', '--http-port', '0', '--grpc-port', '0', '--data-dir', dataDir, '--traffic-rate', '30'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'warn', NO_COLOR: '1' } },
  );
  let output = '';
  const url = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      const m = output.match(/HTTP on (http:\/\/[\d.]+:\d+)/);
      if (m) resolve(m[1]);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`recserve demo exited (${code}) before listening:\n${output}`)));
    setTimeout(() => reject(new Error(`recserve demo did not print its address in 60 s:\n${output}`)), 60_000);
  });
  return { child, url, output: () => output };
}

async function waitReady(base) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(`${base}/v2/health/ready`);
      if (r.ok) return;
    } catch {
      // not up yet
    }
    await sleep(250);
  }
  throw new Error('recserve did not become ready in 60 s');
}

async function promQuery(base, endpoint, params) {
  const r = await fetch(`${base}${endpoint}`, { method: 'POST', body: new URLSearchParams(params) });
  const body = await r.json();
  return { http: r.status, body };
}

async function grafanaLive(base) {
  const now = Math.floor(Date.now() / 1000);
  const queries = grafanaQueries();
  for (const q of queries) {
    const inst = await promQuery(base, '/api/v1/query', { query: q.substituted, time: now });
    assert.equal(inst.body.status, 'success', `instant query of panel "${q.panel}" failed: ${JSON.stringify(inst.body)}\n${q.substituted}`);
    const range = await promQuery(base, '/api/v1/query_range', { query: q.substituted, start: now - 300, end: now, step: 15 });
    assert.equal(range.body.status, 'success', `range query of panel "${q.panel}" failed: ${JSON.stringify(range.body)}`);
  }
  // The traffic shows up: a few queries must answer with data, not only "no error".
  const value = async (expr) => {
    const r = await promQuery(base, '/api/v1/query', { query: expr.replaceAll('$instance', '.*'), time: now });
    return r.body.data.result.map((s) => Number(s.value[1]));
  };
  const byTitle = Object.fromEntries(queries.map((q) => [q.panel + '/' + q.refId, q.expr]));
  const [throughput] = await value(byTitle['Throughput/A']);
  assert.ok(throughput > 5, `Throughput panel answers ${throughput} requests/s with 30/s of simulated traffic`);
  const stages = await value(byTitle['p99 per stage/A']);
  assert.ok(stages.filter(Number.isFinite).length >= 3, `p99 per stage answers ${stages.length} stages`);
  const scenarios = await value(byTitle['Requests per scenario/A']);
  assert.equal(scenarios.length, 2, 'Requests per scenario answers home_feed and search');
  log(`${queries.length} Grafana panel queries answered (instant and range); throughput ${throughput.toFixed(1)}/s`);
}

async function main() {
  fs.mkdirSync(SHOTS, { recursive: true });
  await check('grafana dashboard JSON is well formed and generated from queries.json', async () => checkGrafana());

  assert.ok(fs.existsSync(BIN), `no recserve binary at ${BIN} (run.sh builds it)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'recserve-dash-'));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'recserve-chromium-'));
  const demo = startDemo(dataDir);
  let context;
  try {
    const base = await demo.url;
    await waitReady(base);
    log(`recserve demo at ${base}; ${TRAFFIC_SECS} s of simulated traffic`);
    await sleep(TRAFFIC_SECS * 1000);

    await check('every Grafana panel query evaluates on the live server', () => grafanaLive(base));

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1440, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const page = context.pages()[0] || (await context.newPage());
    const problems = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`external request: ${r.url()}`);
    });

    const panelsWithData = async (section) =>
      page.$$eval(`.grid[data-section="${section}"] .panel`, (cards) =>
        cards.map((c) => ({
          id: c.dataset.panel,
          points: Number(c.dataset.points),
          canvas: !!c.querySelector('canvas'),
          uplot: !!c.querySelector('.uplot'),
        })),
      );
    const expectCharts = async (section, ids) => {
      await page.waitForFunction(
        ({ section, ids }) =>
          ids.every((id) => {
            const c = document.querySelector(`.grid[data-section="${section}"] .panel[data-panel="${id}"]`);
            return c && Number(c.dataset.points) > 0 && c.querySelector('canvas');
          }),
        { section, ids },
        { timeout: 20_000 },
      ).catch(async () => {
        throw new Error(`charts of ${section} without data: ${JSON.stringify(await panelsWithData(section))}`);
      });
      const panels = await panelsWithData(section);
      for (const id of ids) {
        const p = panels.find((x) => x.id === id);
        assert.ok(p && p.points > 0 && p.canvas && p.uplot, `panel ${section}/${id} drawn with data: ${JSON.stringify(p)}`);
      }
      return panels;
    };

    await check('overview: every chart drawn with data points', async () => {
      await page.goto(`${base}/`, { waitUntil: 'load' });
      await page.waitForSelector('body[data-refreshed]');
      const ids = ['throughput', 'error_ratio', 'latency', 'in_flight', 'cpu', 'memory'];
      const panels = await expectCharts('overview', ids);
      await expectCharts('process', ['threads', 'fds']);
      log('overview points:', panels.map((p) => `${p.id}=${p.points}`).join(' '));
      // Three latency series: p50, p95, p99.
      const series = await page.$eval('.panel[data-panel="latency"]', (c) => Number(c.dataset.series));
      assert.equal(series, 3, 'latency panel draws p50, p95 and p99');
      // Exact percentiles (hdrhistogram) beside the bucket estimate: rows with numbers.
      await page.waitForFunction(() => document.querySelectorAll('#percentiles-table tbody tr').length >= 1, null, {
        timeout: 15_000,
      });
      const rows = await page.$$eval('#percentiles-table tbody tr', (trs) =>
        trs.map((tr) => [...tr.querySelectorAll('td')].map((c) => c.textContent)),
      );
      for (const r of rows) {
        assert.equal(r.length, 12, `percentile row: ${r}`);
        assert.match(r[3], /^\d+$/, `request count: ${r}`);
        for (const i of [4, 6, 8, 10]) assert.match(r[i], /^\d+(\.\d+)? (µs|ms|s)$/, `exact percentile: ${r}`);
      }
      log('percentiles:', JSON.stringify(rows));
      await page.screenshot({ path: path.join(SHOTS, 'overview.png'), fullPage: true });
    });

    await check('latency by stage: charts and the bottleneck sentence', async () => {
      await page.click('a[data-page="stages"]');
      await expectCharts('stages', ['stage_p99', 'stage_mean', 'stage_time']);
      await page.waitForFunction(() => document.querySelectorAll('#bottleneck-stages tbody tr').length >= 3, null, {
        timeout: 15_000,
      });
      const summary = await page.textContent('#bottleneck-summary');
      assert.match(summary, /bottleneck|dominat|stage/i, `bottleneck sentence: ${summary}`);
      assert.doesNotMatch(summary, /Waiting for data/);
      const stages = await page.$$eval('#bottleneck-stages tbody tr td:first-child', (tds) => tds.map((t) => t.textContent));
      assert.ok(stages.includes('retrieval') && stages.includes('ranking'), `stage table: ${stages}`);
      log('bottleneck:', summary);
      await page.screenshot({ path: path.join(SHOTS, 'stages.png'), fullPage: true });
    });

    await check('models: ranker and user_tower READY, per-model charts', async () => {
      await page.click('a[data-page="models"]');
      await page.waitForSelector('#models-table tr[data-model="user_tower"]', { timeout: 15_000 });
      const rows = await page.$$eval('#models-table tbody tr[data-model]', (trs) =>
        trs.map((tr) => ({ model: tr.dataset.model, state: tr.dataset.state, cells: [...tr.cells].map((c) => c.textContent) })),
      );
      for (const model of ['ranker', 'user_tower']) {
        const row = rows.find((r) => r.model === model);
        assert.ok(row, `models table lists ${model}: ${JSON.stringify(rows)}`);
        assert.equal(row.state, 'READY', `${model} is READY`);
        assert.notEqual(row.cells[4], '–', `${model} shows its rows/s`);
        assert.match(row.cells[7], /B$/, `${model} shows its memory`);
      }
      await expectCharts('models', ['model_rows', 'model_batch', 'model_queue', 'model_memory']);
      await page.screenshot({ path: path.join(SHOTS, 'models.png'), fullPage: true });
    });

    await check('pipelines: both scenarios with rates and charts', async () => {
      await page.click('a[data-page="pipelines"]');
      await page.waitForSelector('#pipelines-table tr[data-pipeline="search"]', { timeout: 15_000 });
      const rows = await page.$$eval('#pipelines-table tbody tr[data-pipeline]', (trs) => trs.map((tr) => tr.dataset.pipeline));
      assert.deepEqual(rows.sort(), ['home_feed', 'search']);
      await expectCharts('pipelines', ['pipeline_rate', 'pipeline_p99', 'pipeline_errors']);
      await page.screenshot({ path: path.join(SHOTS, 'pipelines.png'), fullPage: true });
    });

    await check('try it: /v1/recommend returns items', async () => {
      await page.click('a[data-page="try"]');
      await page.selectOption('#try-scenario', 'search');
      await page.click('#try-send');
      await page.waitForSelector('#try-items tbody tr.item', { timeout: 15_000 });
      const items = await page.$$eval('#try-items tbody tr.item', (trs) => trs.map((tr) => tr.cells[1].textContent));
      assert.equal(items.length, 10, `10 items for k=10: ${items}`);
      assert.ok(items.every((id) => id.length > 0));
      const meta = await page.textContent('#try-meta');
      assert.match(meta, /ranker v\d/, `reply names the ranker version: ${meta}`);
      await page.screenshot({ path: path.join(SHOTS, 'try.png'), fullPage: true });
    });

    await check('placeholders show no data; range switch redraws', async () => {
      await page.click('a[data-page="alerts"]');
      assert.match(await page.textContent('#page-alerts'), /Nothing is shown here until then/);
      await page.click('a[data-page="overview"]');
      const before = await page.$eval('body', (b) => Number(b.dataset.refreshed));
      await page.click('#range button[data-range="3600"]');
      await page.waitForFunction((n) => Number(document.body.dataset.refreshed) > n, before);
      await expectCharts('overview', ['throughput', 'latency']);
      // Auto-refresh: another refresh arrives on its own within ~5 s.
      const now = await page.$eval('body', (b) => Number(b.dataset.refreshed));
      await page.waitForFunction((n) => Number(document.body.dataset.refreshed) > n, now, { timeout: 12_000 });
    });

    await check('no console errors, failed or external requests', async () => {
      assert.deepEqual(problems, []);
    });
  } finally {
    if (context) await context.close().catch(() => {});
    demo.child.kill('SIGTERM');
    await Promise.race([new Promise((r) => demo.child.once('exit', r)), sleep(10_000)]);
    if (demo.child.exitCode === null) demo.child.kill('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(profile, { recursive: true, force: true });
  }
  log(`${passed} checks passed; screenshots in ${SHOTS}`);
}

main().catch((err) => {
  console.error('[dashboard test] FAILED:', err && err.stack ? err.stack : err);
  process.exit(1);
});
