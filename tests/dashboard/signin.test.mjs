// Browser test of the dashboard's sign-in, against `recserve serve` with authentication on (a
// viewer token created with `recserve token create` in a fresh data directory): the sign-in form
// shows, a wrong token is refused with the server's message, the right one signs in (name and
// role in the header, pages load with the token), a reload keeps the session (sessionStorage),
// the Audit page lists the sign-ins (the refused one by `anonymous`, the viewer's by its token),
// "Sign out" returns to the form, and a token whose role may not read the audit trail (inference)
// sees the server's 403 on the Audit page.
//
// Env: RECSERVE_BIN (the binary), CHROMIUM (default /usr/bin/chromium).

import { execFileSync, spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.RECSERVE_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'release/recserve');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const log = (...a) => console.log('[sign-in test]', ...a);

const data = fs.mkdtempSync(path.join(os.tmpdir(), 'recserve-signin-'));
const token = execFileSync(BIN, ['token', 'create', '--name', 'web', '--role', 'viewer', '--data-dir', data]).toString().trim();
assert.match(token, /^rs_/);
const inference = execFileSync(BIN, ['token', 'create', '--name', 'shop', '--role', 'inference', '--data-dir', data]).toString().trim();

const server = spawn(BIN, ['serve', '--model-repository', path.join(ROOT, 'fixtures/models'), '--http-port', '0', '--grpc-port', '0',
  '--repository-poll-secs', '0', '--data-dir', data], { stdio: ['ignore', 'ignore', 'pipe'] });
const base = await new Promise((resolve, reject) => {
  let text = '';
  server.stderr.on('data', (chunk) => {
    text += chunk;
    const m = text.match(/recserve: HTTP on (http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`recserve exited with ${code}: ${text}`)));
});
log('server at', base);

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage();
  await page.goto(`${base}/#models`);
  await page.waitForSelector('#signin:not([hidden])');
  assert.equal(await page.isHidden('#user'), true);

  await page.fill('#signin-token', 'rs_wrong');
  await page.click('#signin-submit');
  await page.waitForFunction(() => document.querySelector('#signin-error').textContent.includes('not valid'));
  log('ok: a wrong token is refused');

  await page.fill('#signin-token', token);
  await page.click('#signin-submit');
  await page.waitForSelector('#signin', { state: 'hidden' });
  assert.equal(await page.textContent('#user-name'), 'web (viewer)');
  await page.waitForFunction(() => document.querySelector('#models-table tbody').textContent.includes('READY'));
  log('ok: signed in, the models page loads with the token');

  await page.reload();
  await page.waitForFunction(() => document.body.dataset.refreshed);
  assert.equal(await page.isHidden('#signin'), true, 'the session survives a reload');
  assert.equal(await page.textContent('#user-name'), 'web (viewer)');

  const auditSearch = async (hash) => {
    await page.evaluate((h) => {
      document.querySelector('#audit-table').dataset.state = 'stale';
      location.hash = h;
    }, hash);
    await page.waitForFunction(() => ['done', 'error'].includes(document.querySelector('#audit-table').dataset.state));
  };
  await auditSearch('#audit?action=auth.');
  const rows = await page.$$eval('#audit-table tr.auditrow', (trs) => trs.map((tr) => ({ ...tr.dataset, actorCell: tr.querySelector('td.actor').textContent })));
  assert.deepEqual(rows.map((r) => `${r.action} ${r.outcome} ${r.actorCell}`), ['auth.sign_in ok token:web (viewer)', 'auth.sign_in denied anonymous'], JSON.stringify(rows));
  log('ok: the Audit page lists the sign-ins with the token');

  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])');
  log('ok: signed out');

  await page.fill('#signin-token', inference);
  await page.click('#signin-submit');
  await page.waitForSelector('#signin', { state: 'hidden' });
  await auditSearch('#audit');
  const refused = await page.textContent('#audit-error');
  assert.match(refused, /^Your token's role may not read the audit trail\. \/api\/v1\/audit: 403 \S/, refused);
  assert.equal(await page.textContent('#audit-table tbody'), 'No audited actions: the search failed.');
  log('ok: an inference token sees the 403 on the Audit page');
} finally {
  await browser.close();
  // Stop the server, then remove its data directory (a store of ~20 MB).
  if (server.exitCode === null && server.signalCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  fs.rmSync(data, { recursive: true, force: true });
}
log('passed');
