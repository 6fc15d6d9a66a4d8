// Browser test of recserve's embedded dashboard, plus the Grafana dashboard's queries against a
// live server. Starts `recserve demo` (simulated shoppers), lets traffic flow, then:
//  1. checks deploy/grafana/recserve-dashboard.json (structure, generated from queries.json) and
//     runs every panel query, $instance substituted, through /api/v1/query and /api/v1/query_range;
//  2. opens the dashboard in headless Chromium (Debian's, never a downloaded browser) and checks
//     each page: charts drawn with data points, models READY, the bottleneck sentence, Try it
//     returning items, the log writer card, the Logs page (request and service logs, filters in
//     the URL hash, paging, row details, sorting, the JSON-lines export, the server's error for a
//     bad filter, a failed recommendation found by its x-request-id), a click on a chart point
//     opening the logs of its time bucket, the Alerts page (rules with health and last evaluation,
//     firing and pending alerts, the ALERTS history, a rule's expression graph, the notification
//     log against a webhook receiver, reloading the rules and a broken rule file's file:line:col,
//     silences created from an alert, listed, audited, expired, the server's error for a bad one),
//     the Deployments page (the ranker's canary and its arms as the deployment API has them, the
//     online experiment table with the canary arm's CTR and verdict, the drift tables of the
//     ranker's features, the CTR / traffic split / PSI charts, a cancelled prompt sending nothing,
//     a refused change showing the server's error, a new canary share, the rollback: by the
//     bundled rule (given RULE_WAIT_SECS) or from the page), the Audit page (the canary
//     registered, started and rolled back as the audit API lists them, outcomes styled, filters
//     by actor, action prefix, outcome and time in the URL hash, a row's details JSON and its
//     request id linked to the Logs page, paging), the page of the ranker and of its version 1
//     (the versions as the repository and the deployment API have them, requests/s, error ratio,
//     p50/p95/p99, stage breakdown, batch sizes, queue depth and wait, memory: every chart with
//     data and only version 1's series, the exact percentiles of that version), the Fleet page
//     (this replica, its store and the alert evaluator as /api/v1/fleet has them, or the sentence
//     for a server without that API; "no Prometheus" instead of charts, also for the fleet
//     query's 503), no console errors, no failed requests. Screenshots go to SCREENSHOT_DIR.
//
// The demo runs with the bundled rules plus the test's own (--rules, TEST_RULES: an alert that
// fires on the demo's traffic, one that stays pending), --alert-webhook to a local receiver, and
// the bad-canary scenario (--scenario bad-canary): SCENARIO_DELAY_SECS after the start ranker v2
// takes 50% of the shoppers as a canary, which the bundled rule RecserveCanaryCtrWorse rolls
// back a minute or two later.
//
// Env: RECSERVE_BIN (the binary), DASHBOARD_DIR (serve the dashboard's files from there instead
// of the binary's, to check dashboard edits without a rebuild), CHROMIUM (default /usr/bin/chromium), SCREENSHOT_DIR
// (default bench/results/dashboard), TRAFFIC_SECS (default 15), SCENARIO_DELAY_SECS (default
// TRAFFIC_SECS + 10), RULE_WAIT_SECS (default 240: how long the rollback check waits for the
// bundled rule to roll the canary back before it does so from the page).

import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
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
// The canary starts after the Grafana queries ran: registering it (the gate, the latency check)
// takes the CPU for a few seconds, and the throughput check there wants the demo's full rate.
const SCENARIO_DELAY_SECS = Number(process.env.SCENARIO_DELAY_SECS || TRAFFIC_SECS + 10);
// How long the rollback check waits for the bundled rule before it rolls back from the page.
const RULE_WAIT_SECS = Number(process.env.RULE_WAIT_SECS || 240);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log('[dashboard test]', ...a);

let passed = 0;
async function check(name, fn) {
  await fn();
  passed++;
  log('ok', name);
}

// The test's own alert rules, beside the bundled ones (`--rules`): one alert that fires at once on
// the demo's traffic (with a runbook link), one that stays pending for an hour, a recording rule.
const TEST_RULES = `groups:
  - name: dashboard-test
    interval: 5s
    rules:
      - alert: DashboardTestTraffic
        expr: sum(rate(recserve_requests_total[1m])) > 1
        labels:
          severity: info
        annotations:
          summary: "the demo serves {{ $value | humanize }} requests/s"
          runbook_url: "https://example.com/runbooks#dashboard-test-traffic"
      - alert: DashboardTestPending
        expr: sum(rate(recserve_requests_total[1m])) > 1
        for: 1h
        labels:
          severity: info
        annotations:
          summary: "the demo has served requests (pending for an hour)"
      - record: dashboard_test:requests:rate1m
        expr: sum(rate(recserve_requests_total[1m]))
`;
// The same file with a syntax error in one more rule's expression (BROKEN_LINE).
const BROKEN_RULES = `${TEST_RULES}      - alert: DashboardTestBroken
        expr: sum(rate(recserve_requests_total[1m]) > 1
`;

const BROKEN_LINE = BROKEN_RULES.split('\n').findIndex((l) => l.includes('DashboardTestBroken')) + 2;

/** A webhook receiver for the demo's notifications: records each payload. */
async function startWebhook() {
  const payloads = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      try {
        payloads.push(JSON.parse(body));
      } catch {
        payloads.push({ unparsable: body });
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, payloads, url: `http://127.0.0.1:${server.address().port}/hook` };
}

function startDemo(dataDir, extraArgs = []) {
  const child = spawn(
    BIN,
    ['demo', '--http-port', '0', '--grpc-port', '0', '--data-dir', dataDir, '--traffic-rate', '30', ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' } },
  );
  let output = '';
  const url = new Promise((resolve, reject) => {
    const onData = (chunk) => {
      output += chunk;
      if (output.length > 1_000_000) output = output.slice(-100_000); // info logs: keep the tail
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
  const rulesFile = path.join(dataDir, 'dashboard-test.rules.yml');
  fs.writeFileSync(rulesFile, TEST_RULES);
  const webhook = await startWebhook();
  const demo = startDemo(dataDir, [
    '--rules',
    rulesFile,
    '--alert-webhook',
    webhook.url,
    '--scenario',
    'bad-canary',
    '--scenario-delay-secs',
    String(SCENARIO_DELAY_SECS),
  ]);
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
    if (process.env.DASHBOARD_DIR) {
      // The dashboard's files from this directory instead of the binary's: dashboard edits checked
      // without rebuilding the binary that embeds them (CI never sets it).
      const dir = path.resolve(process.env.DASHBOARD_DIR);
      const types = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', json: 'application/json' };
      await context.route(`${base}/**`, (route) => {
        const p = new URL(route.request().url()).pathname;
        const file = p === '/' || p === '/dashboard' ? 'index.html' : p.startsWith('/dashboard/') ? p.slice('/dashboard/'.length) : null;
        if (!file || !fs.existsSync(path.join(dir, file))) return route.continue();
        return route.fulfill({ status: 200, contentType: types[file.split('.').pop()] || 'text/plain', body: fs.readFileSync(path.join(dir, file)) });
      });
      log(`dashboard files from ${dir}, not from the binary`);
    }
    const page = context.pages()[0] || (await context.newPage());
    const problems = [];
    // While the bad-filter check runs, the 400 answers of /api/v1/logs (and Chromium's console
    // line about them) are expected; nothing else is.
    let expectBadLogs = false;
    const isLogsApi = (url) => new URL(url, base).pathname === '/api/v1/logs';
    // Likewise the 400 (or 409) of one API (the bad silence, the broken rule file, a refused
    // deployment change) while its check runs.
    let expectBadPath = null;
    const isExpectedBad = (url) => expectBadPath !== null && new URL(url, base).pathname === expectBadPath;
    // The fleet API's answers on a server without it (404) or without a Prometheus (503 from the
    // fleet query) are expected: the Fleet page says so on the page.
    const isFleetAnswer = (url, status) => {
      const p = new URL(url, base).pathname;
      return (p === '/api/v1/fleet' && status === 404) || (p.startsWith('/api/v1/fleet/query') && [404, 503].includes(status));
    };
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const answered = /status of (\d{3})/.exec(m.text());
      if (answered && isFleetAnswer(m.location()?.url || base, Number(answered[1]))) return;
      if (expectBadLogs && /status of 400/.test(m.text()) && isLogsApi(m.location()?.url || base)) return;
      if (/status of 40[09]/.test(m.text()) && isExpectedBad(m.location()?.url || base)) return;
      problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      const expected =
        (r.status() === 400 && expectBadLogs && isLogsApi(r.url())) || ([400, 409].includes(r.status()) && isExpectedBad(r.url())) || isFleetAnswer(r.url(), r.status());
      if (r.status() >= 400 && !expected) {
        problems.push(`HTTP ${r.status()} for ${r.url()}`);
      }
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) problems.push(`external request: ${r.url()}`);
    });

    // `section`: a queries.json section id, or the selector of a grid (`#model-grid`).
    const gridOf = (section) => (section.startsWith('#') ? section : `.grid[data-section="${section}"]`);
    const panelsWithData = async (section) =>
      page.$$eval(`${gridOf(section)} .panel`, (cards) =>
        cards.map((c) => ({
          id: c.dataset.panel,
          points: Number(c.dataset.points),
          canvas: !!c.querySelector('canvas'),
          uplot: !!c.querySelector('.uplot'),
        })),
      );
    const expectCharts = async (section, ids) => {
      await page.waitForFunction(
        ({ grid, ids }) =>
          ids.every((id) => {
            const c = document.querySelector(`${grid} .panel[data-panel="${id}"]`);
            return c && Number(c.dataset.points) > 0 && c.querySelector('canvas');
          }),
        { grid: gridOf(section), ids },
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

    // ---- Logs page helpers ----
    const STEPS = { 900: 5, 3600: 15, 21600: 60 }; // app.js RANGES
    const logsTable = '#logs-table';
    /** Runs `action` (which starts a search of `table`, the Logs or the Audit page's) and waits
     *  for its answer: `done` or `error` (then `errorBox` says why). */
    const tableRun = async (table, errorBox, action, want = 'done') => {
      await page.$eval(table, (t) => {
        t.dataset.state = 'stale';
      });
      await action();
      await page.waitForFunction((sel) => ['done', 'error'].includes(document.querySelector(sel).dataset.state), table, {
        timeout: 20_000,
      });
      const state = await page.$eval(table, (t) => t.dataset.state);
      if (state !== want) {
        throw new Error(`search of ${table} ended "${state}", not "${want}": ${await page.textContent(errorBox)} (hash ${await page.evaluate(() => location.hash)})`);
      }
    };
    const logsRun = (action, want) => tableRun(logsTable, '#logs-error', action, want);
    const openLogs = (hash) => logsRun(() => page.evaluate((h) => { location.hash = h; }, hash));
    const logRows = () =>
      page.$$eval('#logs-table tbody tr.logrow', (trs) =>
        trs.map((tr) => ({
          ...tr.dataset,
          cells: [...tr.cells].map((c) => c.textContent),
          error: tr.querySelector('td.err')?.title || tr.querySelector('td.err')?.textContent || '',
        })),
      );
    /** Searches again (the log writer commits asynchronously) until `pred(rows)` holds. */
    const searchUntil = async (pred, what, timeout = 30_000) => {
      const deadline = Date.now() + timeout;
      for (;;) {
        await logsRun(() => page.click('#logs-search'));
        const rows = await logRows();
        if (pred(rows)) return rows;
        if (Date.now() > deadline) throw new Error(`${what}; rows: ${JSON.stringify(rows.slice(0, 5))}`);
        await sleep(500);
      }
    };
    const hashParams = () => page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.split('?')[1] || '')));

    /** The server's answer to `p` (the checks compare the pages with the APIs). */
    const api = async (p, init) => {
      const r = await fetch(`${base}${p}`, init);
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : null };
    };

    // ---- Deployments page helpers ----
    const deploymentRows = () =>
      page.$$eval('#deployments-table tr.deployment', (trs) =>
        trs.map((tr) => ({
          model: tr.dataset.model,
          mode: tr.dataset.mode,
          retired: tr.dataset.retired,
          retiredText: tr.querySelector('td.retired').textContent,
          arms: [...tr.querySelectorAll('.arm')].map((a) => ({ name: a.dataset.arm, version: Number(a.dataset.version), percent: Number(a.dataset.percent) })),
          buttons: [...tr.querySelectorAll('button')].map((b) => b.textContent),
        })),
      );
    const rankerApi = async () => (await api('/api/v1/deployments')).body.data.find((d) => d.model === 'ranker');
    /** Waits until the table's ranker row shows what the API says (the page refreshes every 5 s). */
    const rankerShown = async () => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const want = await rankerApi();
        const row = (await deploymentRows()).find((r) => r.model === 'ranker');
        const arms = want.arms.map((a) => ({ name: a.name, version: a.version, percent: a.percent }));
        if (row && row.mode === (want.mode || '') && row.retired === want.retired.join(',') && JSON.stringify(row.arms) === JSON.stringify(arms)) return { row, want };
        if (Date.now() > deadline) throw new Error(`deployments table ${JSON.stringify(row)} vs API ${JSON.stringify(want)}`);
        await sleep(500);
      }
    };
    const outcome = () => page.$eval('#deployments-outcome', (b) => ({ state: b.dataset.state, text: b.textContent, visible: !b.hidden }));
    const rankerRow = '#deployments-table tr.deployment[data-model="ranker"]';
    const VERDICTS = /^(not enough data yet|no real difference yet|significantly worse|significantly better)$/;

    await check('deployments: the canary as the API has it, its experiment, drift of the ranker features, three charts', async () => {
      // The scenario starts the canary SCENARIO_DELAY_SECS after the start (after the gate and the
      // latency check of the new version); the bundled rule rolls it back a minute or two later.
      let ranker;
      const deadline = Date.now() + 60_000;
      while (!((ranker = await rankerApi()).arms.length > 1 || ranker.retired.length)) {
        assert.ok(Date.now() < deadline, `the bad-canary scenario started no canary: ${JSON.stringify(ranker)}`);
        await sleep(500);
      }
      await page.goto(`${base}/#deployments`, { waitUntil: 'load' });
      await page.waitForSelector('#deployments-table[data-state="done"]', { timeout: 15_000 });
      assert.equal(await page.$eval('a[data-page="deployments"]', (a) => a.classList.contains('active')), true, 'the nav marks Deployments');
      const { row, want } = await rankerShown();
      if (want.arms.length > 1) {
        assert.equal(want.mode, 'canary');
        assert.deepEqual(row.arms.map((a) => `${a.name} v${a.version}`), ['stable v1', 'canary v2'], JSON.stringify(row));
        assert.deepEqual(row.buttons, ['Promote v2', 'Roll back', 'Set canary share'], 'promote and roll back for a model with two arms');
        log(`deployments: ranker ${want.description}`);
      } else {
        assert.ok(want.retired.includes(2), JSON.stringify(want));
        assert.match(row.retiredText, /v2/);
        assert.deepEqual(row.buttons, [], 'no buttons for a single arm');
        log(`deployments: the canary was already rolled back: ${want.description}, retired ${want.retired}`);
      }
      const tower = (await deploymentRows()).find((r) => r.model === 'user_tower');
      assert.ok(tower, 'user_tower is listed');
      assert.deepEqual(tower.buttons, [], 'no buttons for a model without arms');

      // Experiments: the ranker's arms per pipeline as the API lists them; the canary arm with a
      // CTR, its interval and a verdict.
      const shownArms = () =>
        page.$$eval('#experiments table.experiment[data-model="ranker"] tr.arm', (trs) =>
          trs.map((tr) => ({
            pipeline: tr.closest('table').dataset.pipeline,
            arm: tr.dataset.arm,
            version: tr.dataset.version,
            verdict: tr.dataset.verdict,
            ctr: tr.querySelector('td.ctr .value').textContent,
            interval: tr.querySelector('td.ctr .range-text').textContent,
            bar: !!tr.querySelector('td.ctr .ibar .range'),
            verdictText: tr.querySelector('td.verdict').textContent,
          })),
        );
      const armKey = (xs) => xs.map((a) => `${a.pipeline}/${a.arm}/v${a.version}`).sort().join(',');
      let arms;
      const until = Date.now() + 30_000;
      for (;;) {
        const apiArms = (await api('/api/v1/experiments')).body.data.arms.filter((a) => a.model === 'ranker');
        arms = await shownArms();
        const canaryWithCtr = arms.some((a) => a.arm === 'canary' && /^\d+(\.\d+)?%$/.test(a.ctr));
        if (canaryWithCtr && armKey(arms) === armKey(apiArms)) break;
        assert.ok(Date.now() < until, `experiment rows ${JSON.stringify(arms)} vs API ${armKey(apiArms)}`);
        await sleep(500);
      }
      const canary = arms.filter((a) => a.arm === 'canary');
      for (const a of canary) {
        assert.equal(a.version, '2', JSON.stringify(a));
        assert.match(a.verdictText, VERDICTS, `verdict text: ${JSON.stringify(a)}`);
      }
      const measured = canary.find((a) => /^\d+(\.\d+)?%$/.test(a.ctr));
      assert.match(measured.interval, /^\d+(\.\d+)?% – \d+(\.\d+)?%$/, `CTR interval: ${JSON.stringify(measured)}`);
      assert.ok(measured.bar, 'the interval is drawn as a bar');
      for (const a of arms.filter((x) => x.arm === 'stable')) assert.equal(a.verdictText, 'control', JSON.stringify(a));
      log('experiments:', canary.map((a) => `${a.pipeline} canary ${a.ctr} "${a.verdictText}"`).join('; '));

      // Drift: the ranker's features (and its score) with verdicts, significant first.
      await page.waitForSelector('#drift[data-state="done"] .drift-set[data-model="ranker"][data-version="1"] tr.feature', { timeout: 15_000 });
      const drift = (await api('/api/v1/drift')).body.data;
      const v1 = drift.find((m) => m.model === 'ranker' && String(m.version) === '1');
      assert.ok(v1 && v1.snapshot.features.length >= 5, `drift of ranker v1: ${JSON.stringify(v1).slice(0, 300)}`);
      const feats = await page.$$eval('#drift .drift-set[data-model="ranker"][data-version="1"] tr.feature', (trs) =>
        trs.map((tr) => ({ name: tr.dataset.feature, role: tr.dataset.role, verdict: tr.dataset.verdict, badge: tr.querySelector('.drift-verdict').textContent })),
      );
      assert.deepEqual(feats.filter((f) => f.role === 'feature').map((f) => f.name).sort(), v1.snapshot.features.map((f) => f.name).sort(), 'the features of the API');
      assert.equal(feats.filter((f) => f.role === 'score').length, v1.snapshot.score ? 1 : 0, 'the score row');
      for (const f of feats) assert.match(f.badge, /^(ok|moderate|significant|insufficient data)$/, `verdict of ${f.name}: ${f.badge}`);
      const rank = { significant: 0, moderate: 1, ok: 2, insufficient_data: 3 };
      const ranks = feats.map((f) => rank[f.verdict]);
      assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b), `significant first: ${feats.map((f) => `${f.name}=${f.verdict}`)}`);
      // A table per ranker version the API monitors (a version registered since the page's last
      // refresh shows at the next one, every 5 s).
      const driftUntil = Date.now() + 15_000;
      for (;;) {
        const versions = await page.$$eval('#drift .drift-set[data-model="ranker"]', (sets) => sets.map((s) => s.dataset.version));
        const missing = drift.filter((x) => x.model === 'ranker' && !versions.includes(String(x.version))).map((x) => x.version);
        if (!missing.length) break;
        assert.ok(Date.now() < driftUntil, `a drift table for ranker v${missing.join(', v')}: the page has v${versions.join(', v')}`);
        await sleep(500);
      }

      // The charts: online CTR per arm, the traffic split, PSI per feature.
      await expectCharts('deployments', ['online_ctr', 'traffic_ratio', 'drift_psi']);
      const legends = () => page.$$eval('.grid[data-section="deployments"] .panel', (cs) => Object.fromEntries(cs.map((c) => [c.dataset.panel, c.querySelector('.legend').textContent])));
      // The canary's series, once the server has sampled them (the page redraws every 5 s).
      await page
        .waitForFunction(
          () => {
            const legend = (id) => document.querySelector(`.grid[data-section="deployments"] .panel[data-panel="${id}"] .legend`).textContent;
            // Both pipelines' canary CTR series must have been scraped, not just the first one.
            return legend('online_ctr').includes('home_feed ranker canary v2') && legend('traffic_ratio').includes('ranker canary v2');
          },
          null,
          { timeout: 30_000 },
        )
        .catch(async () => {
          throw new Error(`no canary series in the charts: ${JSON.stringify(await legends())}`);
        });
      const shown = await legends();
      assert.match(shown.online_ctr, /home_feed ranker canary v2/, `CTR legend: ${shown.online_ctr}`);
      assert.match(shown.traffic_ratio, /ranker stable v1/, `traffic legend: ${shown.traffic_ratio}`);
      assert.match(shown.drift_psi, /ranker v1 \w+/, `PSI legend: ${shown.drift_psi.slice(0, 200)}`);
      await page.screenshot({ path: path.join(SHOTS, 'deployments.png'), fullPage: true });
    });

    await check("deployments: a cancelled prompt sends nothing; a refused change shows the server's error; a new canary share", async () => {
      if ((await rankerApi()).arms.length < 2) {
        log('the canary was rolled back before the action checks: the actions were not exercised');
        return;
      }
      const posts = [];
      const onRequest = (r) => {
        if (r.method() === 'POST' && new URL(r.url()).pathname.startsWith('/api/v1/deployments/')) posts.push(new URL(r.url()).pathname);
      };
      page.on('request', onRequest);
      try {
        // Roll back, then cancel the prompt for the reason: nothing is sent.
        await page.waitForSelector(`${rankerRow} button.rollback`);
        const dialog = new Promise((resolve) =>
          page.once('dialog', async (d) => {
            const seen = { type: d.type(), message: d.message() };
            await d.dismiss();
            resolve(seen);
          }),
        );
        await page.click(`${rankerRow} button.rollback`);
        const d = await dialog;
        assert.equal(d.type, 'prompt');
        assert.match(d.message, /Roll ranker back to stable v1\?/);
        await sleep(300);
        assert.deepEqual(posts, [], 'a cancelled prompt sends no request');
        assert.equal((await outcome()).visible, false, 'no outcome for a cancelled prompt');

        // A canary share out of range: the server refuses; the page shows its error.
        const share = `${rankerRow} form.split input[name="percent"]`;
        expectBadPath = '/api/v1/deployments/ranker/percent';
        try {
          await page.fill(share, '150');
          await page.click(`${rankerRow} form.split button[type="submit"]`);
          await page.waitForFunction(() => ['ok', 'error'].includes(document.querySelector('#deployments-outcome').dataset.state), null, { timeout: 10_000 });
        } finally {
          expectBadPath = null;
        }
        let out = await outcome();
        assert.equal(out.state, 'error', JSON.stringify(out));
        assert.ok(out.visible);
        const direct = await api('/api/v1/deployments/ranker/percent', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ percent: 150 }) });
        assert.ok(direct.status >= 400 && direct.status < 500 && direct.body.error, JSON.stringify(direct));
        assert.ok(out.text.includes(direct.body.error), `the server's error "${direct.body.error}" is shown: ${out.text}`);
        assert.match(out.text, new RegExp(`ranker: percent refused\\. .*: ${direct.status} `));
        await page.screenshot({ path: path.join(SHOTS, 'deployments-refused.png'), fullPage: true });

        // A valid share: the table and the API agree on 60/40.
        await page.$eval('#deployments-outcome', (b) => {
          b.dataset.state = 'stale';
        });
        expectBadPath = '/api/v1/deployments/ranker/percent'; // 409 when the rule rolls back first
        try {
          await page.fill(share, '40');
          await page.click(`${rankerRow} form.split button[type="submit"]`);
          await page.waitForFunction(() => ['ok', 'error'].includes(document.querySelector('#deployments-outcome').dataset.state), null, { timeout: 10_000 });
        } finally {
          expectBadPath = null;
        }
        out = await outcome();
        if (out.state === 'error' && /has no canary/.test(out.text)) {
          log(`the bundled rule rolled the canary back meanwhile: ${out.text}`);
        } else {
          assert.equal(out.state, 'ok', JSON.stringify(out));
          assert.match(out.text, /ranker canary share set at .*: now stable v1 60%, canary v2 40%\./);
          const { row } = await rankerShown();
          if (row.arms.length > 1) assert.deepEqual(row.arms.map((a) => a.percent), [60, 40]);
        }
        assert.deepEqual(posts, ['/api/v1/deployments/ranker/percent', '/api/v1/deployments/ranker/percent'], 'one request per change');
      } finally {
        page.off('request', onRequest);
      }
    });

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

    await check('overview: the log writer card shows committed records and 0 drops', async () => {
      await page.waitForFunction(
        () => {
          const c = document.querySelector('#logwriter');
          return c.dataset.state && Number(document.querySelector('#logwriter-committed').dataset.value) > 0;
        },
        null,
        { timeout: 20_000 },
      ).catch(async () => {
        throw new Error(`log writer card: ${await page.textContent('#logwriter')}`);
      });
      const card = await page.$eval('#logwriter', (c) => ({
        state: c.dataset.state,
        dropped: document.querySelector('#logwriter-dropped').dataset.value,
        droppedText: document.querySelector('#logwriter-dropped b').textContent,
        droppedBad: document.querySelector('#logwriter-dropped').classList.contains('bad'),
        queue: document.querySelector('#logwriter-queue').dataset.value,
        link: c.querySelector('a[href="#logs"]') != null,
      }));
      assert.equal(card.state, 'ok', `log writer state: ${JSON.stringify(card)}`);
      assert.equal(card.dropped, '0', `no drops: ${JSON.stringify(card)}`);
      assert.equal(card.droppedText, '0');
      assert.equal(card.droppedBad, false, 'zero drops are not shown in red');
      assert.match(card.queue, /^\d+$/, `queue depth: ${JSON.stringify(card)}`);
      assert.ok(card.link, 'the card links to the logs page');
    });

    await check('chart → logs: a click on a latency point opens the logs of its time bucket', async () => {
      const range = await page.$eval('#range button.active', (b) => Number(b.dataset.range));
      const step = STEPS[range];
      const over = await page.$('.panel[data-panel="latency"] .u-over');
      assert.ok(over, 'the latency chart has a plot area');
      const box = await over.boundingBox();
      // The newest point (right edge): the demo's traffic is in its bucket.
      const x = box.x + box.width - 2;
      const y = box.y + box.height / 2;
      await page.mouse.move(x, y);
      assert.equal(
        await page.$eval('.panel[data-panel="latency"] .pick-hint', (h) => getComputedStyle(h).visibility),
        'visible',
        'the "click to see the requests" hint shows on hover',
      );
      assert.match(await page.textContent('.panel[data-panel="latency"] .pick-hint'), /click to see the requests/);
      await logsRun(() => page.mouse.click(x, y));
      assert.ok(await page.$eval('#page-logs', (p) => p.classList.contains('active')), 'the Logs page is shown');
      const h = await hashParams();
      const start = Number(h.start);
      const end = Number(h.end);
      assert.ok(Number.isInteger(start) && Number.isInteger(end), `time filter in the hash: ${JSON.stringify(h)}`);
      assert.equal(end - start, 2 * step, `the bucket is t ± step (${step} s): ${JSON.stringify(h)}`);
      assert.equal((start + step) % step, 0, `t is a point of the chart (a multiple of the step): ${JSON.stringify(h)}`);
      assert.ok(Math.abs(start + step - Date.now() / 1000) < 120, `t is the newest point: ${JSON.stringify(h)}`);
      assert.equal(h.sort, 'latency', 'latency panels open the rows sorted by latency');
      assert.equal(await page.inputValue('#logs-form input[name="start"]'), h.start, 'the form shows the filter');
      // The bucket's requests (searching again while the log writer catches up).
      const rows = await searchUntil((r) => r.length > 0, `no requests between ${start} and ${end}`);
      for (const r of rows) {
        assert.ok(Number(r.time) >= start * 1000 && Number(r.time) <= end * 1000, `row time ${r.time} inside [${start}, ${end}]`);
      }
      const latencies = rows.map((r) => Number(r.latency));
      assert.deepEqual(latencies, [...latencies].sort((a, b) => b - a), 'rows sorted by latency, slowest first');
      // Error panels say what they open (their queries.json hint adds status=error).
      assert.match(await page.textContent('.panel[data-panel="error_ratio"] .pick-hint'), /failed requests/);
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

    /** The versions table of the model page: [{version, state, current, link, cells}]. */
    const modelVersions = () =>
      page.$$eval('#model-versions tbody tr.version', (trs) =>
        trs.map((tr) => ({
          version: tr.dataset.version,
          state: tr.dataset.state,
          current: tr.classList.contains('current'),
          link: tr.querySelector('a')?.getAttribute('href') || null,
          cells: [...tr.cells].map((c) => c.textContent),
        })),
      );
    const MODEL_PANELS = ['model_requests', 'model_errors', 'model_latency', 'model_stage_p99', 'model_stage_time', 'model_rows', 'model_batch', 'model_queue', 'model_queue_wait', 'model_memory'];
    /** Each model panel's legend entries and PromQL (the card's title). */
    const modelPanels = () =>
      page.$$eval('#model-grid .panel', (cs) =>
        cs.map((c) => ({ id: c.dataset.panel, exprs: c.title, series: [...c.querySelectorAll('.legend > span')].map((s) => s.firstChild.nextSibling.textContent) })),
      );
    /** Direct V2 inferences of ranker v1 (the demo's pipelines record no queue stage: these do). */
    const inferRanker = async (n) => {
      const body = JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 24], data: Array.from({ length: 24 }, (_, i) => (i % 5) / 10) }] });
      for (let i = 0; i < n; i++) {
        const r = await fetch(`${base}/v2/models/ranker/versions/1/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
        assert.equal(r.status, 200, `V2 infer of ranker v1: ${r.status} ${await r.text()}`);
      }
    };

    await check('model page: the ranker lists its versions as the repository and the deployment API have them; charts per version', async () => {
      await inferRanker(30);
      await page.click('#models-table tr[data-model="ranker"] td:first-child a');
      assert.equal(await page.evaluate(() => location.hash), '#models/ranker');
      assert.ok(await page.$eval('#page-model', (p) => p.classList.contains('active')), 'the model page is shown');
      assert.ok(await page.$eval('a[data-page="models"]', (a) => a.classList.contains('active')), 'the nav marks Models');
      await page.waitForSelector('#model-versions[data-state="done"] tr.version', { timeout: 15_000 });
      const deployment = await rankerApi();
      const index = (await api('/v2/repository/index', { method: 'POST', body: '{}' })).body.filter((m) => m.name === 'ranker');
      const want = new Set([...index.map((m) => String(m.version)), ...deployment.versions.map((v) => String(v.version)), ...deployment.retired.map(String)]);
      const rows = await modelVersions();
      for (const v of want) assert.ok(rows.some((r) => r.version === v), `version ${v} listed: ${JSON.stringify(rows)}`);
      assert.ok(!rows.some((r) => r.version === 'none'), 'the placeholder version "none" is not a version');
      const v1 = rows.find((r) => r.version === '1');
      assert.equal(v1.state, 'READY', JSON.stringify(v1));
      assert.equal(v1.link, '#models/ranker/versions/1');
      assert.ok(rows.every((r) => !r.current), 'no version is marked current on the model page');
      assert.match(v1.cells[4], /\/s$/, `requests/s of v1: ${JSON.stringify(v1)}`);
      for (const r of rows.filter((x) => deployment.retired.map(String).includes(x.version))) assert.match(r.cells[2], /retired/, JSON.stringify(r));
      await expectCharts('#model-grid', ['model_requests', 'model_latency', 'model_stage_p99', 'model_rows', 'model_batch', 'model_queue', 'model_memory']);
      const panels = await modelPanels();
      assert.deepEqual(panels.map((p) => p.id), MODEL_PANELS);
      for (const p of panels) assert.match(p.exprs, /model="ranker",version!="none"/, `${p.id} is filtered to the ranker: ${p.exprs}`);
      log(`model page: ranker versions ${rows.map((r) => `v${r.version} ${r.state} ${r.cells[2]}`).join(', ')}`);
      await page.screenshot({ path: path.join(SHOTS, 'model.png'), fullPage: true });
    });

    await check('version page: ranker v1 has its own requests/s, error ratio, p50/p95/p99, stages, batch sizes, queue depth and wait, exact percentiles', async () => {
      await page.click('#model-versions tr.version[data-version="1"] a');
      assert.equal(await page.evaluate(() => location.hash), '#models/ranker/versions/1');
      await page.waitForSelector('#page-model[data-version="1"]');
      assert.equal(await page.textContent('#model-title'), 'ranker version 1');
      assert.deepEqual(await page.$$eval('#model-crumbs a', (as) => as.map((a) => a.getAttribute('href'))), ['#models', '#models/ranker']);
      await page.waitForFunction(() => document.querySelector('#model-versions tr.version.current')?.dataset.version === '1', null, { timeout: 15_000 });
      await expectCharts('#model-grid', MODEL_PANELS);
      const panels = await modelPanels();
      for (const p of panels) {
        assert.match(p.exprs, /model="ranker",version="1"/, `${p.id} is filtered to v1: ${p.exprs}`);
        assert.doesNotMatch(p.exprs, /\$filter/);
      }
      const series = Object.fromEntries(panels.map((p) => [p.id, p.series]));
      for (const id of ['model_requests', 'model_errors', 'model_latency', 'model_rows', 'model_batch', 'model_queue', 'model_queue_wait', 'model_memory']) {
        assert.ok(series[id].length > 0 && series[id].every((n) => n.startsWith('v1 ') || n === 'v1'), `${id}: only version 1's series: ${series[id]}`);
      }
      assert.deepEqual(series.model_latency, ['v1 p50', 'v1 p95', 'v1 p99'], 'p50, p95 and p99 of v1');
      assert.ok(series.model_requests.includes('v1 home_feed') && series.model_requests.includes('v1 search'), `requests/s per pipeline: ${series.model_requests}`);
      assert.ok(['ranking', 'retrieval'].every((s) => series.model_stage_p99.includes(s)), `stage breakdown: ${series.model_stage_p99}`);
      assert.deepEqual(series.model_batch, ['v1 mean', 'v1 p99'], 'mean and p99 batch size');
      // The exact percentiles of v1 only, with numbers.
      await page.waitForSelector('#model-percentiles tbody tr.target', { timeout: 15_000 });
      const rows = await page.$$eval('#model-percentiles tbody tr.target', (trs) => trs.map((tr) => ({ version: tr.dataset.version, cells: [...tr.cells].map((c) => c.textContent) })));
      const report = (await api('/api/v1/percentiles')).body;
      const apiPipelines = report.targets.filter((t) => t.model === 'ranker' && t.version === '1' && t.count > 0).map((t) => t.pipeline);
      for (const r of rows) {
        assert.equal(r.version, '1', JSON.stringify(r));
        assert.equal(r.cells.length, 11, JSON.stringify(r));
        assert.match(r.cells[2], /^\d+$/, `request count: ${r.cells}`);
        for (const i of [3, 5, 7, 9]) assert.match(r.cells[i], /^\d+(\.\d+)? (µs|ms|s)$/, `exact percentile: ${r.cells}`);
      }
      assert.ok(rows.some((r) => r.cells[1] === 'home_feed') && rows.length >= apiPipelines.length - 1, `percentile rows ${JSON.stringify(rows)} vs API pipelines ${apiPipelines}`);
      // Back to the model page through the breadcrumb.
      log(`version page: ${Object.entries(series).map(([k, v]) => `${k}=${v.length}`).join(' ')}`);
      await page.screenshot({ path: path.join(SHOTS, 'model-version.png'), fullPage: true });
      await page.click('#model-crumbs a[href="#models/ranker"]');
      await page.waitForFunction(() => document.querySelector('#page-model').dataset.version === '' && document.querySelector('#model-title').textContent === 'ranker: all versions');
    });

    await check('fleet: this replica, its store and the alert evaluator (or why not); "no Prometheus" instead of charts', async () => {
      const fleet = await api('/api/v1/fleet');
      assert.ok([200, 404].includes(fleet.status), `/api/v1/fleet: ${fleet.status} ${JSON.stringify(fleet.body)}`);
      await page.click('a[data-page="fleet"]');
      assert.equal(await page.evaluate(() => location.hash), '#fleet');
      await page.waitForFunction(() => !['idle', ''].includes(document.querySelector('#fleet-message').dataset.state), null, { timeout: 15_000 });
      const shown = () =>
        page.evaluate(() => {
          const stat = (id) => ({ value: document.querySelector(`#${id} b`).textContent, cls: document.querySelector(`#${id}`).className });
          return {
            info: document.querySelector('#fleet-info').dataset.state,
            note: document.querySelector('#fleet-note').textContent,
            replica: stat('fleet-replica'),
            store: stat('fleet-store'),
            evaluator: stat('fleet-evaluator'),
            prometheus: stat('fleet-prometheus'),
            message: document.querySelector('#fleet-message').dataset.state,
            messageText: document.querySelector('#fleet-message p').textContent,
            messageShown: !document.querySelector('#fleet-message').hidden,
            gridShown: !document.querySelector('#fleet-grid').hidden,
          };
        });
      let s = await shown();
      assert.ok(s.messageShown && !s.gridShown, `a message, no charts: ${JSON.stringify(s)}`);
      assert.equal(await page.isVisible('#fleet-message'), true, 'the message is visible');
      assert.equal(await page.isVisible('#fleet-grid'), false, 'no chart is visible');
      if (fleet.status === 404) {
        assert.equal(s.info, 'missing', JSON.stringify(s));
        assert.match(s.note, /no fleet API \(GET \/api\/v1\/fleet answered 404\)/);
        assert.equal(s.message, 'no-fleet-api');
        assert.match(s.messageText, /no Prometheus/);
        log('fleet: this server has no /api/v1/fleet yet; the page says so');
      } else {
        const d = fleet.body.data;
        assert.equal(s.info, 'done', JSON.stringify(s));
        assert.equal(s.replica.value, d.replica || 'unnamed');
        assert.equal(s.store.value, d.store);
        if (d.evaluator) {
          assert.ok(s.evaluator.value.startsWith(d.evaluator.holder), `evaluator ${JSON.stringify(s.evaluator)} vs ${JSON.stringify(d.evaluator)}`);
          assert.equal(/\bself\b/.test(s.evaluator.cls), !!d.evaluator.this_replica, `"this replica" highlighted iff it holds the lease: ${JSON.stringify(s.evaluator)}`);
          assert.equal(s.evaluator.value.endsWith('(this replica)'), !!d.evaluator.this_replica);
        }
        assert.equal(d.prometheus, null, 'the test server has no Prometheus');
        assert.equal(s.prometheus.value, 'none');
        assert.equal(s.message, 'no-prometheus', JSON.stringify(s));
        assert.match(s.messageText, /No Prometheus is configured.*--prometheus-url URL/);
        // The fleet query's own 503 (a page that believes there is a Prometheus): the server's
        // sentence is shown, not an error banner.
        const direct = await api('/api/v1/fleet/query_range', { method: 'POST', body: new URLSearchParams({ query: 'up', start: '0', end: '60', step: '15' }) });
        assert.equal(direct.status, 503, JSON.stringify(direct));
        assert.equal(direct.body.errorType, 'unavailable');
        await page.route('**/api/v1/fleet', (route) =>
          route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ status: 'success', data: { ...d, prometheus: 'http://127.0.0.1:9' } }) }),
        );
        try {
          await page.waitForFunction((text) => document.querySelector('#fleet-message p').textContent === text, direct.body.error, { timeout: 15_000 });
        } finally {
          await page.unroute('**/api/v1/fleet');
        }
        s = await shown();
        assert.equal(s.message, 'no-prometheus', JSON.stringify(s));
        assert.ok(s.messageShown && !s.gridShown);
        log(`fleet: replica ${s.replica.value}, store ${s.store.value}, evaluator ${s.evaluator.value}; ${direct.body.error}`);
      }
      assert.equal(await page.isVisible('#banner'), false, 'no error banner');
      await page.screenshot({ path: path.join(SHOTS, 'fleet.png'), fullPage: true });
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

    await check('logs: request rows of both pipelines; details, sorting, pipeline filter', async () => {
      await logsRun(() => page.click('a[data-page="logs"]'));
      assert.equal(await page.evaluate(() => location.hash), '#logs');
      assert.equal(await page.$eval('a[data-page="logs"]', (a) => a.classList.contains('soon')), false, 'Logs is no longer "soon"');
      const rows = await searchUntil(
        (r) => r.some((x) => x.pipeline === 'home_feed') && r.some((x) => x.pipeline === 'search'),
        'request rows of home_feed and search',
      );
      for (const r of rows) {
        assert.match(r.requestId, /\S/, `request id: ${JSON.stringify(r)}`);
        assert.match(r.status, /^\d{3}$/, `status: ${JSON.stringify(r)}`);
        assert.match(r.cells[5], /^\d+(\.\d+)? (µs|ms|s)$/, `latency cell: ${JSON.stringify(r)}`);
      }
      const times = rows.map((r) => Number(r.time));
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
      // Sorting the loaded rows by latency, both ways, and back to time order.
      await page.click('#logs-sort-latency');
      let lat = (await logRows()).map((r) => Number(r.latency));
      assert.equal(lat.length, rows.length);
      assert.deepEqual(lat, [...lat].sort((a, b) => b - a), 'slowest first');
      assert.equal((await hashParams()).sort, 'latency', 'the sort is in the hash');
      await page.click('#logs-sort-latency');
      lat = (await logRows()).map((r) => Number(r.latency));
      assert.deepEqual(lat, [...lat].sort((a, b) => a - b), 'fastest first');
      await page.click('#logs-sort-latency');
      assert.deepEqual((await logRows()).map((r) => Number(r.time)), times, 'back to newest first');
      // A row opens to its whole record: fields, stage bars, input and output.
      const ok = rows.find((r) => r.status === '200');
      assert.ok(ok, 'a successful request among the rows');
      await page.click(`#logs-table tr.logrow[data-request-id="${ok.requestId}"] td.time`);
      const detail = await page.$eval('#logs-table tr.logdetail', (tr) => ({
        text: tr.textContent,
        stages: [...tr.querySelectorAll('.stage-name')].map((e) => e.textContent),
        bars: [...tr.querySelectorAll('.stage-track i')].map((i) => parseFloat(i.style.width)),
        output: tr.querySelector('pre.output')?.textContent || '',
      }));
      assert.ok(detail.text.includes(ok.requestId), 'the detail names the request');
      assert.ok(detail.stages.length >= 2, `stage bars: ${JSON.stringify(detail)}`);
      assert.ok(detail.bars.every((w) => w >= 0 && w <= 100) && detail.bars.some((w) => w > 0), `bar widths: ${detail.bars}`);
      assert.match(detail.output, /\n {2}"/, 'the JSON output is pretty-printed');
      await page.screenshot({ path: path.join(SHOTS, 'logs.png'), fullPage: true });
      // The pipeline filter, from the form into the hash.
      await page.fill('#logs-form input[name="pipeline"]', 'search');
      const search = await searchUntil((r) => r.length > 0, 'requests of search');
      assert.ok(search.every((r) => r.pipeline === 'search'), `only search rows: ${[...new Set(search.map((r) => r.pipeline))]}`);
      assert.equal((await hashParams()).pipeline, 'search', 'the filter is in the hash');
    });

    await check('logs: a failed recommendation is found under status=error with its error text', async () => {
      const resp = await fetch(`${base}/v1/recommend`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ scenario: 'no_such_scenario', user_id: 'U0000042' }),
      });
      assert.ok(resp.status >= 400 && resp.status < 500, `an unknown scenario is a client error: ${resp.status}`);
      const id = resp.headers.get('x-request-id');
      assert.ok(id, 'the answer carries x-request-id');
      const body = await resp.json();
      assert.ok(body.error, `error answer: ${JSON.stringify(body)}`);
      await openLogs('#logs?status=error');
      assert.equal(await page.inputValue('#logs-form input[name="status"]'), 'error', 'the hash fills the form');
      const rows = await searchUntil((r) => r.some((x) => x.requestId === id), `request ${id} under status=error`);
      assert.ok(rows.every((r) => Number(r.status) >= 400), `only failed requests: ${rows.map((r) => r.status)}`);
      const row = rows.find((r) => r.requestId === id);
      assert.equal(row.status, String(resp.status), 'the row shows the HTTP status');
      assert.match(row.error, /no_such_scenario/, `the row shows the error text: ${JSON.stringify(row)}`);
      log(`failed request ${id}: ${row.error}`);
      // Its service events: the request id link switches to the service log, filtered by it.
      await logsRun(() => page.click(`#logs-table tr.logrow[data-request-id="${id}"] td.rid a`));
      const h = await hashParams();
      assert.equal(h.kind, 'service');
      assert.equal(h.request_id, id);
      assert.equal(await page.$eval('#logs-table', (t) => t.dataset.kind), 'service');
      const events = await logRows();
      assert.ok(events.every((e) => e.requestId === id), `only events of ${id}: ${JSON.stringify(events.slice(0, 3))}`);
    });

    await check('logs: service events with levels; an event links to its request', async () => {
      await openLogs('#logs');
      await logsRun(() => page.click('#logs-kind button[data-kind="service"]'));
      assert.equal((await hashParams()).kind, 'service');
      assert.equal(await page.isVisible('#logs-form select[name="level"]'), true, 'the level filter shows for service events');
      assert.equal(await page.isVisible('#logs-form input[name="status"]'), false, 'request-only filters hide');
      const rows = await searchUntil((r) => r.length > 0, 'service events');
      for (const r of rows) assert.match(r.level, /^(ERROR|WARN|INFO|DEBUG|TRACE)$/, `level: ${JSON.stringify(r)}`);
      const badges = await page.$$eval('#logs-table tbody .badge.level', (b) => b.map((e) => e.textContent));
      assert.equal(badges.length, rows.length, 'every event has a level badge');
      // level=warn leaves out info events.
      await page.selectOption('#logs-form select[name="level"]', 'warn');
      await logsRun(() => page.click('#logs-search'));
      for (const r of await logRows()) assert.match(r.level, /^(ERROR|WARN)$/, `level filter: ${JSON.stringify(r)}`);
      assert.equal((await hashParams()).level, 'warn');
      // An event of a request links to that request's record (when the server logged one).
      await page.selectOption('#logs-form select[name="level"]', '');
      await logsRun(() => page.click('#logs-search'));
      const withId = (await logRows()).find((r) => r.requestId);
      if (withId) {
        await logsRun(() => page.click(`#logs-table tr.logrow[data-request-id="${withId.requestId}"] td.rid a`));
        const h = await hashParams();
        assert.equal(h.request_id, withId.requestId);
        assert.equal(h.kind, undefined, 'requests is the default kind');
        const reqs = await logRows();
        assert.ok(reqs.every((r) => r.requestId === withId.requestId), `the request of the event: ${JSON.stringify(reqs)}`);
      } else {
        log('no service event names a request in this run: the event → request link was not exercised');
      }
      await openLogs('#logs?kind=service');
      await page.click('#logs-table tr.logrow td.time');
      assert.ok(await page.$('#logs-table tr.logdetail pre.message'), 'an event opens to its message and fields');
      await page.screenshot({ path: path.join(SHOTS, 'logs-service.png'), fullPage: true });
    });

    await check('logs: paging with next_cursor, and the JSON-lines export of the same filter', async () => {
      // A closed window in the past, so nothing new arrives between the pages and the export.
      const end = Math.floor(Date.now() / 1000) - 5;
      const start = end - 6;
      await openLogs(`#logs?start=${start}&end=${end}&limit=50`);
      let rows = await logRows();
      assert.equal(rows.length, 50, 'a first page of 50');
      assert.equal(await page.isVisible('#logs-more'), true, 'older records: a "Load older" button');
      let pages = 1;
      while (await page.isVisible('#logs-more')) {
        const before = rows.length;
        await logsRun(() => page.click('#logs-more'));
        rows = await logRows();
        assert.ok(rows.length > before, 'a page of older records is appended');
        pages++;
        assert.ok(pages < 100, 'paging ends');
      }
      assert.ok(pages >= 2, `at least two pages of 50 in 6 s of 30/s traffic (${rows.length} rows)`);
      const ids = rows.map((r) => r.requestId);
      assert.equal(new Set(ids).size, ids.length, 'no record twice across pages');
      const times = rows.map((r) => Number(r.time));
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'pages continue newest first');
      for (const t of times) assert.ok(t >= start * 1000 && t <= end * 1000, `time ${t} inside the window`);
      const href = await page.getAttribute('#logs-export', 'href');
      const q = new URL(href, base).searchParams;
      assert.equal(q.get('format'), 'jsonl');
      assert.equal(q.get('start'), String(start));
      assert.equal(q.get('end'), String(end));
      const exp = await fetch(new URL(href, base));
      assert.equal(exp.status, 200);
      const lines = (await exp.text()).split('\n').filter((l) => l.trim());
      const exported = lines.map((l) => JSON.parse(l));
      assert.equal(exported.length, rows.length, 'the export has as many records as the pages');
      assert.deepEqual(exported.map((r) => r.request_id).sort(), [...ids].sort(), 'the same records');
      log(`${rows.length} records in ${pages} pages; export ${exported.length} lines`);
    });

    await check("logs: a bad filter shows the server's error", async () => {
      expectBadLogs = true;
      try {
        await logsRun(() => page.evaluate(() => { location.hash = '#logs?limit=0'; }), 'error');
        const text = await page.textContent('#logs-error');
        assert.match(text, /400/);
        assert.match(text, /limit must be a whole number from 1 to 1000/, `error shown: ${text}`);
        assert.equal(await page.isVisible('#logs-error'), true);
        assert.equal((await logRows()).length, 0, 'no rows for a bad filter');
        await page.fill('#logs-form input[name="limit"]', '');
        await page.fill('#logs-form input[name="start"]', 'yesterday');
        await logsRun(() => page.click('#logs-search'), 'error');
        const text2 = await page.textContent('#logs-error');
        assert.match(text2, /start/, `a bad time names the parameter: ${text2}`);
        await page.screenshot({ path: path.join(SHOTS, 'logs-error.png'), fullPage: true });
        await openLogs('#logs');
        assert.equal(await page.isVisible('#logs-error'), false, 'the error goes with a good search');
      } finally {
        expectBadLogs = false;
      }
    });

    // ---- Alerts page ----
    const openAlerts = async (hash = '#alerts') => {
      await page.evaluate((h) => {
        location.hash = h;
      }, hash);
      await page.waitForFunction(() => document.querySelector('#rules-table').dataset.state === 'done' && document.querySelector('#alerts-table').dataset.state === 'done', null, { timeout: 20_000 });
    };
    const ruleRows = () =>
      page.$$eval('#rules-table tr.rule', (trs) =>
        trs.map((tr) => ({ ...tr.dataset, lastText: tr.querySelector('.lasteval').textContent, expr: tr.querySelector('code.expr').textContent, error: tr.querySelector('.lasterror')?.textContent || '' })),
      );
    const alertRows = () =>
      page.$$eval('#alerts-table tr.alert', (trs) =>
        trs.map((tr) => ({
          alertname: tr.dataset.alertname,
          state: tr.dataset.state,
          badge: tr.querySelector('.badge').textContent,
          summary: tr.querySelector('.summary').textContent,
          runbook: tr.querySelector('a.runbook')?.getAttribute('href') || null,
          graph: tr.querySelector('a.graph')?.getAttribute('href') || null,
          since: tr.querySelector('.since').textContent,
        })),
      );
    const silenceRow = (id) => page.$eval(`#silences-table tr.silence[data-id="${id}"]`, (tr) => ({ state: tr.dataset.state, text: tr.textContent, chips: [...tr.querySelectorAll('.chip')].map((c) => c.textContent) })).catch(() => null);

    await check('alerts: the bundled rules and the test rules listed with health ok and a last evaluation', async () => {
      await page.click('a[data-page="alerts"]');
      await openAlerts();
      // Every rule evaluated at least once: wait until the API says so, then compare.
      let groups;
      const deadline = Date.now() + 30_000;
      for (;;) {
        groups = (await api('/api/v1/rules')).body.data.groups;
        const rules = groups.flatMap((g) => g.rules);
        if (rules.every((r) => r.health === 'ok' && Date.parse(r.lastEvaluation) > 0)) break;
        assert.ok(Date.now() < deadline, `rules not all evaluated ok: ${JSON.stringify(rules.map((r) => [r.name, r.health, r.lastEvaluation]))}`);
        await sleep(500);
      }
      const bundled = groups.filter((g) => /bundled/.test(g.file));
      assert.ok(bundled.length >= 3, `bundled groups: ${groups.map((g) => g.file)}`);
      const want = groups.flatMap((g) => g.rules.map((r) => ({ group: g.name, name: r.name })));
      await page.waitForFunction((n) => document.querySelectorAll('#rules-table tr.rule[data-health="ok"][data-last-evaluation]:not([data-last-evaluation=""])').length === n, want.length, { timeout: 15_000 });
      const rows = await ruleRows();
      assert.deepEqual(rows.map((r) => `${r.group}/${r.rule}`).sort(), want.map((r) => `${r.group}/${r.name}`).sort(), 'the table lists the rules of the API');
      for (const r of rows) {
        assert.equal(r.health, 'ok', `health of ${r.rule}`);
        assert.match(r.lastText, /^(just now|\d+ (s|min) ago)$/, `last evaluation of ${r.rule}: ${r.lastText}`);
        assert.ok(Math.abs(Date.now() - Number(r.lastEvaluation)) < 10 * 60_000, `last evaluation of ${r.rule} is recent: ${r.lastEvaluation}`);
        assert.equal(r.error, '', `no last error for ${r.rule}`);
      }
      for (const g of bundled) {
        for (const rule of g.rules) {
          const row = rows.find((r) => r.rule === rule.name && r.group === g.name);
          assert.equal(row.expr, rule.query.trim(), `the expression of ${rule.name}`);
        }
      }
      assert.ok(rows.some((r) => r.rule === 'RecserveHighErrorRatio' && r.type === 'alerting'));
      assert.ok(rows.some((r) => r.rule === 'dashboard_test:requests:rate1m' && r.type === 'recording'));
      log(`${rows.length} rules in ${groups.length} groups, all ok`);
    });

    await check('alerts: firing and pending alerts with state, summary and runbook; the ALERTS history chart', async () => {
      await page.waitForSelector('#alerts-table tr.alert[data-alertname="DashboardTestTraffic"][data-state="firing"]', { timeout: 30_000 });
      await page.waitForSelector('#alerts-table tr.alert[data-alertname="DashboardTestPending"][data-state="pending"]', { timeout: 30_000 });
      // The table shows what the API answers (after a refresh caught up with it).
      let rows;
      let apiAlerts;
      const deadline = Date.now() + 30_000;
      for (;;) {
        apiAlerts = (await api('/api/v1/alerts')).body.data.alerts;
        rows = await alertRows();
        const key = (xs) => xs.map((a) => `${a.alertname ?? a.labels.alertname}/${a.state}`).sort().join(',');
        if (key(rows) === key(apiAlerts)) break;
        assert.ok(Date.now() < deadline, `alerts table ${key(rows)} vs API ${key(apiAlerts)}`);
        await sleep(500);
      }
      const firing = rows.find((r) => r.alertname === 'DashboardTestTraffic');
      assert.equal(firing.badge, 'firing');
      assert.match(firing.summary, /^the demo serves \d+(\.\d+)?k? requests\/s$/, `templated summary: ${firing.summary}`);
      assert.equal(firing.runbook, 'https://example.com/runbooks#dashboard-test-traffic', 'runbook link from the annotation');
      assert.match(firing.since, /ago|just now/);
      assert.ok(firing.graph && firing.graph.startsWith('#alerts?expr='), `graph link: ${firing.graph}`);
      const pending = rows.find((r) => r.alertname === 'DashboardTestPending');
      assert.equal(pending.badge, 'pending');
      assert.equal(pending.runbook, null, 'no runbook annotation, no link');
      assert.match(await page.textContent('#alerts-count'), /^\d+ firing, \d+ pending$/);
      // The history of ALERTS over the header's range: a series for the firing test alert.
      await page.waitForFunction(() => Number(document.querySelector('#alerts-history').dataset.points) > 0 && document.querySelector('#alerts-history canvas'), null, { timeout: 30_000 });
      await page.waitForFunction(() => document.querySelector('#alerts-history .legend').textContent.includes('DashboardTestTraffic firing'), null, { timeout: 30_000 });
      await page.screenshot({ path: path.join(SHOTS, 'alerts.png'), fullPage: true });
    });

    await check("alerts: a rule's expression graph draws the value and its threshold", async () => {
      await page.click('#rules-table tr.rule[data-rule="DashboardTestTraffic"] a.graph');
      const hash = await page.evaluate(() => location.hash);
      const q = new URLSearchParams(hash.split('?')[1]);
      assert.equal(q.get('expr'), 'sum(rate(recserve_requests_total[1m])) > 1');
      assert.equal(q.get('title'), 'DashboardTestTraffic');
      await page.waitForSelector('#alerts-graph:not([hidden]) .panel canvas', { timeout: 20_000 });
      const graph = await page.$eval('#alerts-graph', (c) => ({
        split: c.dataset.split,
        expr: c.querySelector('#alerts-graph-expr').textContent,
        points: Number(c.querySelector('.panel').dataset.points),
        series: Number(c.querySelector('.panel').dataset.series),
        legend: c.querySelector('.legend').textContent,
      }));
      assert.equal(graph.split, 'threshold');
      assert.equal(graph.expr, q.get('expr'));
      // The compared value has as many series as query_range answers for it, plus the threshold.
      const now = Math.floor(Date.now() / 1000);
      const value = await promQuery(base, '/api/v1/query_range', { query: 'sum(rate(recserve_requests_total[1m]))', start: now - 900, end: now, step: 5 });
      assert.equal(value.body.status, 'success');
      assert.equal(value.body.data.result.length, 1);
      assert.equal(graph.series, value.body.data.result.length + 1, `series drawn: ${JSON.stringify(graph)}`);
      assert.ok(graph.points > 2, `points drawn: ${JSON.stringify(graph)}`);
      assert.match(graph.legend, /threshold > 1/);
      await page.screenshot({ path: path.join(SHOTS, 'alerts-graph.png'), fullPage: true });
      // An expression without a number threshold is drawn whole: the recording rule.
      await page.click('#rules-table tr.rule[data-rule="dashboard_test:requests:rate1m"] a.graph');
      await page.waitForFunction(() => {
        const c = document.querySelector('#alerts-graph');
        return c.dataset.split === 'whole' && Number(c.querySelector('.panel').dataset.points) > 0;
      }, null, { timeout: 20_000 });
      assert.equal(await page.$eval('#alerts-graph .panel', (p) => Number(p.dataset.series)), 1);
      // From an alert row too; "close" hides the graph.
      await page.click('#alerts-table tr.alert[data-alertname="DashboardTestTraffic"] a.graph');
      await page.waitForFunction(() => document.querySelector('#alerts-graph').dataset.split === 'threshold', null, { timeout: 10_000 });
      await page.click('#alerts-graph-close');
      await page.waitForSelector('#alerts-graph', { state: 'hidden' });
      assert.equal(await page.evaluate(() => location.hash), '#alerts');
    });

    await check('alerts: the notification log shows the firing notification the webhook received', async () => {
      // group_wait is 30 s from the first firing evaluation.
      await page.waitForSelector('#notifications-table tr.notification[data-status="firing"][data-outcome="sent"]', { timeout: 90_000 });
      const received = webhook.payloads.filter((p) => p.status === 'firing' && (p.alerts || []).some((a) => a.labels?.alertname === 'DashboardTestTraffic'));
      assert.ok(received.length >= 1, `the webhook received the firing alert: ${JSON.stringify(webhook.payloads).slice(0, 500)}`);
      const { log: entries, receivers } = (await api('/api/v1/notifications')).body.data;
      assert.ok(entries.some((e) => e.status === 'firing' && e.outcome === 'sent'), JSON.stringify(entries));
      assert.ok(receivers.length >= 1 && receivers[0].sent >= 1, JSON.stringify(receivers));
      assert.match(await page.textContent('#notifications-receivers'), /\d+ sent, \d+ failed/);
    });

    await check('alerts: "Reload rules" reports success, and a broken rule file with its file:line:col', async () => {
      await openAlerts();
      const groups = (await api('/api/v1/rules')).body.data.groups;
      const nRules = groups.reduce((n, g) => n + g.rules.length, 0);
      const reload = async () => {
        await page.$eval('#rules-reload-outcome', (b) => {
          b.dataset.state = 'stale';
        });
        await page.click('#rules-reload');
        await page.waitForFunction(() => ['ok', 'error'].includes(document.querySelector('#rules-reload-outcome').dataset.state), null, { timeout: 20_000 });
        return page.$eval('#rules-reload-outcome', (b) => ({ state: b.dataset.state, text: b.textContent, visible: !b.hidden }));
      };
      let out = await reload();
      assert.equal(out.state, 'ok', JSON.stringify(out));
      assert.ok(out.visible);
      assert.match(out.text, new RegExp(`Rules reloaded at .*: ${groups.length} groups, ${nRules} rules\\.`));
      fs.writeFileSync(rulesFile, BROKEN_RULES);
      expectBadPath = '/api/v1/rules/reload';
      try {
        out = await reload();
      } finally {
        expectBadPath = null;
        fs.writeFileSync(rulesFile, TEST_RULES);
      }
      assert.equal(out.state, 'error', JSON.stringify(out));
      assert.match(out.text, /Reload refused \(HTTP 400\); the rules in use stay\./);
      const where = `${rulesFile}:${BROKEN_LINE}:`;
      assert.ok(out.text.includes(where), `the error names ${where}: ${out.text}`);
      await page.screenshot({ path: path.join(SHOTS, 'alerts-reload-error.png'), fullPage: true });
      // The rules in use stayed; the repaired file reloads.
      assert.equal((await ruleRows()).length, nRules);
      out = await reload();
      assert.equal(out.state, 'ok', JSON.stringify(out));
      const audit = (await api('/api/v1/audit?action=rules.reload')).body.data.records;
      assert.ok(audit.some((r) => r.outcome === 'failed') && audit.some((r) => r.outcome === 'ok'), `audit of the reloads: ${JSON.stringify(audit)}`);
    });

    await check('alerts: a silence from an alert row is created, listed active, audited, then expired', async () => {
      await openAlerts();
      await page.click('#alerts-table tr.alert[data-alertname="DashboardTestTraffic"] button.silence');
      const matchers = await page.inputValue('#silence-form textarea[name="matchers"]');
      assert.deepEqual(matchers.split('\n').sort(), ['alertname=DashboardTestTraffic', 'severity=info'], `prefilled from the labels: ${matchers}`);
      await page.fill('#silence-form input[name="duration"]', '90m');
      await page.fill('#silence-form input[name="createdBy"]', 'dashboard-test');
      await page.fill('#silence-form input[name="comment"]', 'silenced by the dashboard test');
      await page.click('#silence-create');
      await page.waitForSelector('#silence-created[data-id]', { timeout: 10_000 });
      const id = await page.$eval('#silence-created', (p) => p.dataset.id);
      assert.match(await page.textContent('#silence-created'), new RegExp(`Silence ${id} created`));
      await page.waitForSelector(`#silences-table tr.silence[data-id="${id}"][data-state="active"]`, { timeout: 10_000 });
      const row = await silenceRow(id);
      assert.deepEqual(row.chips.sort(), ['alertname="DashboardTestTraffic"', 'severity="info"']);
      assert.match(row.text, /dashboard-test/);
      assert.match(row.text, /silenced by the dashboard test/);
      assert.match(row.text, /ends in (1 h (29|30) min|89 min)/, `ends in about 90 min: ${row.text}`);
      const listed = (await api('/api/v2/silences')).body.find((s) => s.id === id);
      assert.ok(listed, `GET /api/v2/silences lists ${id}`);
      assert.equal(listed.status.state, 'active');
      assert.equal(listed.createdBy, 'dashboard-test');
      assert.equal(listed.comment, 'silenced by the dashboard test');
      assert.deepEqual(
        listed.matchers.map((m) => [m.name, m.value, m.isRegex, m.isEqual]).sort(),
        [['alertname', 'DashboardTestTraffic', false, true], ['severity', 'info', false, true]],
      );
      const minutes = (Date.parse(listed.endsAt) - Date.parse(listed.startsAt)) / 60_000;
      assert.ok(Math.abs(minutes - 90) < 1, `90 minutes long: ${minutes}`);
      const audited = async (action) => (await api('/api/v1/audit?action=silence.')).body.data.records.find((r) => r.action === action && r.target === id);
      const created = await audited('silence.create');
      assert.ok(created, `the audit trail has silence.create of ${id}`);
      assert.equal(created.outcome, 'ok');
      await page.screenshot({ path: path.join(SHOTS, 'alerts-silence.png'), fullPage: true });
      // Expire it.
      await page.click(`#silences-table tr.silence[data-id="${id}"] button.expire`);
      await page.waitForSelector(`#silences-table tr.silence[data-id="${id}"][data-state="expired"]`, { timeout: 10_000 });
      assert.equal(await page.$(`#silences-table tr.silence[data-id="${id}"] button.expire`), null, 'an expired silence has no Expire button');
      assert.match((await silenceRow(id)).text, /ended (just now|\d+ s ago)/);
      assert.equal((await api('/api/v2/silences')).body.find((s) => s.id === id).status.state, 'expired');
      assert.ok(await audited('silence.expire'), `the audit trail has silence.expire of ${id}`);
    });

    await check("alerts: a bad silence shows the server's error; a bad matcher line is named", async () => {
      await openAlerts();
      const body = { matchers: [], startsAt: new Date().toISOString(), endsAt: new Date(Date.now() + 3600_000).toISOString(), createdBy: 'x', comment: 'x' };
      const direct = await api('/api/v2/silences', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(direct.status, 400);
      assert.ok(direct.body.error, JSON.stringify(direct.body));
      const before = (await api('/api/v2/silences')).body.length;
      await page.fill('#silence-form textarea[name="matchers"]', '');
      await page.fill('#silence-form input[name="duration"]', '1h');
      expectBadPath = '/api/v2/silences';
      try {
        await page.$eval('#silence-error', (p) => {
          p.textContent = '';
        });
        await page.click('#silence-create');
        await page.waitForFunction(() => document.querySelector('#silence-error').textContent !== '', null, { timeout: 10_000 });
      } finally {
        expectBadPath = null;
      }
      const text = await page.textContent('#silence-error');
      assert.ok(text.includes(direct.body.error), `the server's error "${direct.body.error}" is shown: ${text}`);
      assert.match(text, /400/);
      assert.equal(await page.isVisible('#silence-error'), true);
      assert.equal(await page.textContent('#silence-created'), '', 'no "created" message');
      assert.equal((await api('/api/v2/silences')).body.length, before, 'no silence was created');
      await page.screenshot({ path: path.join(SHOTS, 'alerts-silence-error.png'), fullPage: true });
      // A line that is no matcher is refused in the page, naming the line; a bad duration too.
      await page.fill('#silence-form textarea[name="matchers"]', 'alertname=X\nseverity warning');
      await page.fill('#silence-form input[name="duration"]', 'soon');
      await page.click('#silence-create');
      const local = await page.textContent('#silence-error');
      assert.match(local, /line 2: "severity warning"/);
      assert.match(local, /duration: "soon"/);
      assert.equal((await api('/api/v2/silences')).body.length, before, 'nothing sent');
      await page.click('#silence-clear');
      assert.equal(await page.isVisible('#silence-error'), false, 'Clear removes the error');
    });

    await check('deployments: after the rollback (by the bundled rule or from the page) v2 is retired and audited', async () => {
      // The bundled rule gets RULE_WAIT_SECS to roll the canary back itself (the Audit checks
      // look for its rollback by `alerting`); only then is it rolled back from the page.
      const waitStart = Date.now();
      while ((await rankerApi()).arms.length > 1 && Date.now() - waitStart < RULE_WAIT_SECS * 1000) await sleep(2000);
      log(`waited ${Math.round((Date.now() - waitStart) / 1000)} s for the bundled rule's rollback`);
      await page.click('a[data-page="deployments"]');
      await page.waitForSelector('#deployments-table[data-state="done"]', { timeout: 15_000 });
      if ((await rankerApi()).arms.length > 1) {
        // The rule has not acted yet: roll back from the page, with a reason.
        await rankerShown();
        await page.$eval('#deployments-outcome', (b) => {
          b.dataset.state = 'stale';
        });
        page.once('dialog', (d) => d.accept('dashboard test: the canary clicks worse'));
        expectBadPath = '/api/v1/deployments/ranker/rollback'; // 409 when the rule rolls back first
        try {
          await page.click(`${rankerRow} button.rollback`);
          await page.waitForFunction(() => ['ok', 'error'].includes(document.querySelector('#deployments-outcome').dataset.state), null, { timeout: 10_000 });
        } finally {
          expectBadPath = null;
        }
        const out = await outcome();
        if (out.state === 'ok') assert.match(out.text, /ranker rolled back at .*: now stable v1 100%\./, JSON.stringify(out));
        else log(`the bundled rule rolled the canary back first: ${out.text}`);
      }
      const { row, want } = await rankerShown();
      assert.equal(want.arms.length, 1, JSON.stringify(want));
      assert.ok(want.retired.includes(2), `v2 retired: ${JSON.stringify(want)}`);
      assert.match(row.retiredText, /v2/);
      assert.deepEqual(row.buttons, [], 'no promote or roll back once a single arm is left');
      const audit = (await api('/api/v1/audit?action=deploy.rollback')).body.data.records.filter((r) => r.target === 'ranker' && r.outcome === 'ok');
      assert.equal(audit.length, 1, `one rollback of ranker in the audit trail: ${JSON.stringify(audit)}`);
      assert.ok(audit[0].reason, `the rollback has its reason: ${JSON.stringify(audit[0])}`);
      log(`ranker rolled back by ${audit[0].actor}: ${audit[0].reason}`);
      // The drift table of the canary version stays, marked retired.
      if ((await api('/api/v1/drift')).body.data.some((m) => m.model === 'ranker' && String(m.version) === '2')) {
        await page.waitForFunction(() => document.querySelector('#drift .drift-set[data-model="ranker"][data-version="2"] h4 .badge')?.textContent === 'retired', null, { timeout: 15_000 });
      }
      await page.screenshot({ path: path.join(SHOTS, 'deployments-rolled-back.png'), fullPage: true });
    });

    // ---- Audit page (after the rollback: the trail holds the canary's register, canary and
    // rollback, the rule reloads and the silences of the Alerts checks) ----
    const auditRun = (action) => tableRun('#audit-table', '#audit-error', action);
    const openAudit = (hash) => auditRun(() => page.evaluate((h) => { location.hash = h; }, hash));
    const auditRows = () =>
      page.$$eval('#audit-table tbody tr.auditrow', (trs) =>
        trs.map((tr) => ({
          ...tr.dataset,
          actorCell: tr.querySelector('td.actor').textContent,
          badge: tr.querySelector('.badge').className,
          reason: tr.querySelector('td.reason').title,
        })),
      );
    const auditApi = async (query) => (await api(`/api/v1/audit?${query}`)).body.data;
    /** The page's rows against the API's answer to `query` (the same search), newest first. */
    const auditMatchesApi = async (query) => {
      const rows = await auditRows();
      const records = (await auditApi(query)).records;
      assert.deepEqual(rows.map((r) => r.id), records.map((r) => String(r.id)), `the rows of ${query} as the API lists them`);
      const times = rows.map((r) => Number(r.time));
      assert.deepEqual(times, [...times].sort((a, b) => b - a), 'newest first');
      return { rows, records };
    };
    let rollbackActor = null;

    await check('audit: the trail lists the canary registered, started and rolled back, as the API has it', async () => {
      await auditRun(() => page.click('a[data-page="audit"]'));
      assert.equal(await page.$eval('a[data-page="audit"]', (a) => a.classList.contains('active')), true, 'the nav marks Audit');
      const { rows, records } = await auditMatchesApi('');
      const find = (action) => rows.find((r) => r.action === action && r.target === 'ranker' && r.outcome === 'ok');
      for (const action of ['deploy.register', 'deploy.canary', 'deploy.rollback']) assert.ok(find(action), `${action} of ranker listed: ${JSON.stringify(rows.map((r) => r.action))}`);
      const rollback = find('deploy.rollback');
      rollbackActor = rollback.actor;
      assert.ok(rows.indexOf(rollback) < rows.indexOf(find('deploy.canary')) && rows.indexOf(find('deploy.canary')) <= rows.indexOf(find('deploy.register')), 'rollback, canary, register: newest first');
      const want = records.find((r) => String(r.id) === rollback.id);
      assert.equal(rollback.reason, want.reason, 'the reason column (whole in its title)');
      assert.ok(rollback.actorCell.startsWith(want.actor), `the actor column: ${rollback.actorCell}`);
      if (rollbackActor === 'alerting') log(`audit: the bundled rule rolled the canary back: ${want.reason}`);
      else log(`audit: the canary was rolled back from the page (actor ${rollbackActor}) before the rule acted`);
      // Outcomes are styled: ok green, failed (the broken rule file's reload) red.
      assert.match(rollback.badge, /\bok\b/);
      const failed = rows.find((r) => r.action === 'rules.reload' && r.outcome === 'failed');
      assert.ok(failed, 'the refused rule reload is listed');
      assert.match(failed.badge, /\bbad\b/);
      assert.ok(rows.some((r) => r.action === 'silence.create') && rows.some((r) => r.action === 'silence.expire'), 'the silence created and expired');
      await page.screenshot({ path: path.join(SHOTS, 'audit.png'), fullPage: true });
    });

    await check('audit: filtering by actor, action prefix and outcome narrows the table; the filters are in the hash', async () => {
      const all = (await auditRows()).length;
      await page.fill('#audit-form input[name="actor"]', rollbackActor);
      await auditRun(() => page.click('#audit-search'));
      assert.deepEqual(await hashParams(), { actor: rollbackActor });
      const { rows } = await auditMatchesApi(`actor=${encodeURIComponent(rollbackActor)}`);
      assert.ok(rows.length >= 1 && rows.length < all, `actor ${rollbackActor}: ${rows.length} of ${all} rows`);
      assert.ok(rows.every((r) => r.actor === rollbackActor), JSON.stringify(rows));
      assert.ok(rows.some((r) => r.action === 'deploy.rollback' && r.target === 'ranker'), 'the rollback stays');
      if (rollbackActor === 'alerting') assert.ok(rows.every((r) => r.action === 'deploy.rollback'), `alerting only rolls back: ${JSON.stringify(rows)}`);
      await openAudit('#audit?action=deploy.&outcome=ok');
      assert.equal(await page.inputValue('#audit-form input[name="action"]'), 'deploy.', 'the form follows the hash');
      const deploys = (await auditMatchesApi('action=deploy.&outcome=ok')).rows;
      assert.ok(deploys.length >= 3 && deploys.every((r) => r.action.startsWith('deploy.') && r.outcome === 'ok'), JSON.stringify(deploys));
      await openAudit('#audit?actor=nobody-at-all');
      assert.equal(await page.textContent('#audit-table tbody'), 'No audited actions match these filters.');
      await openAudit('#audit?since=1h&action=deploy.register');
      assert.equal(await page.$eval('#audit-since button.active', (b) => b.dataset.since), '1h');
      assert.match(await page.$eval('#audit-table', (t) => t.dataset.query), /^start=\d+&action=deploy\.register$/);
      assert.equal((await auditRows()).length, 1, 'the canary was registered within the hour');
    });

    await check('audit: a row opens to show its details JSON and its request id linked to the logs; Load more pages', async () => {
      await openAudit('#audit?action=deploy.canary');
      const { records } = await auditMatchesApi('action=deploy.canary');
      await page.click('#audit-table tr.auditrow');
      await page.waitForSelector('#audit-table tr.auditdetail pre.details');
      assert.deepEqual(JSON.parse(await page.textContent('#audit-table tr.auditdetail pre.details')), JSON.parse(records[0].details), 'the details JSON');
      await page.click('#audit-table tr.auditrow');
      assert.equal(await page.$('#audit-table tr.auditdetail'), null, 'a second click closes the details');
      // A reload from the Alerts page came over HTTP: its request id opens that request's events.
      await openAudit('#audit?action=rules.reload');
      const reload = (await auditApi('action=rules.reload')).records[0];
      assert.ok(reload.request_id, JSON.stringify(reload));
      await page.click('#audit-table tr.auditrow');
      const link = await page.$eval('#audit-table tr.auditdetail a.request', (a) => ({ href: a.getAttribute('href'), text: a.textContent }));
      assert.equal(link.text, `${reload.request_id} →`);
      await logsRun(() => page.click('#audit-table tr.auditdetail a.request'));
      assert.equal((await hashParams()).request_id, reload.request_id, `the link ${link.href}`);
      assert.equal(await page.inputValue('#logs-form input[name="request_id"]'), reload.request_id);
      // Paging: two a page, "Load more" appends the next two as the API pages them.
      await openAudit('#audit?limit=2');
      const first = await auditApi('limit=2');
      const second = await auditApi(`limit=2&cursor=${encodeURIComponent(first.next_cursor)}`);
      assert.deepEqual((await auditRows()).map((r) => r.id), first.records.map((r) => String(r.id)));
      assert.equal(await page.isVisible('#audit-more'), true, 'Load more is shown');
      await auditRun(() => page.click('#audit-more'));
      assert.deepEqual((await auditRows()).map((r) => r.id), [...first.records, ...second.records].map((r) => String(r.id)));
    });

    await check('no page is a placeholder; range switch redraws', async () => {
      assert.equal(await page.$('.page.placeholder'), null, 'no page is a placeholder');
      assert.deepEqual(await page.$$eval('.nav a.soon', (as) => as.map((a) => a.dataset.page)), [], 'no page is "soon"');
      assert.deepEqual(
        await page.$$eval('.nav a', (as) => as.map((a) => a.dataset.page)),
        ['overview', 'fleet', 'stages', 'models', 'pipelines', 'try', 'deployments', 'alerts', 'logs', 'audit'],
        'Fleet after Overview, Deployments between Pipelines and Alerts, Audit last',
      );
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
    webhook.server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(profile, { recursive: true, force: true });
  }
  log(`${passed} checks passed; screenshots in ${SHOTS}`);
}

main().catch((err) => {
  console.error('[dashboard test] FAILED:', err && err.stack ? err.stack : err);
  process.exit(1);
});
