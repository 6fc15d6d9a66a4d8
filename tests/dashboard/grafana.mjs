// Structure checks of deploy/grafana/recserve-dashboard.json and the list of its panel queries
// with template variables substituted (used by dashboard.test.mjs against a live server).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const GRAFANA = path.join(ROOT, 'deploy/grafana/recserve-dashboard.json');
const QUERIES = path.join(ROOT, 'dashboard/queries.json');

/** What each template variable becomes when a query is sent to recserve directly. */
export const SUBSTITUTIONS = { instance: '.*' };

export function substitute(expr) {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a, b) => {
    const name = a || b;
    assert.ok(name in SUBSTITUTIONS, `query uses an unknown variable ${m}: ${expr}`);
    return SUBSTITUTIONS[name];
  });
}

function load(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

/** The panels of collapsed rows, which Grafana keeps in the row's own `panels` list. */
function nestedPanels(dash) {
  return dash.panels.filter((p) => p.type === 'row').flatMap((r) => r.panels ?? []);
}

/** Every target of every panel, those of collapsed rows included: {panel, refId, expr, substituted}. */
export function grafanaQueries() {
  const dash = load(GRAFANA);
  return [...dash.panels.filter((p) => p.type !== 'row'), ...nestedPanels(dash)].flatMap((p) =>
    p.targets.map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr, substituted: substitute(t.expr) })),
  );
}

/** Each metric selector of the expression filters on the replica variable first. */
function filtersOnInstance(expr) {
  const metrics = [...expr.matchAll(/\b((?:recserve|process)_\w+)(\{[^}]*\}|\[)?/g)];
  return metrics.every((m) => (m[2] ?? '').startsWith('{instance=~"$instance"'));
}

export function checkGrafana() {
  const dash = load(GRAFANA);
  for (const field of ['uid', 'title', 'schemaVersion', 'panels', 'templating', 'time', 'refresh']) {
    assert.ok(field in dash, `dashboard has "${field}"`);
  }
  assert.equal(typeof dash.uid, 'string');
  assert.ok(Number.isInteger(dash.schemaVersion) && dash.schemaVersion >= 36, `schemaVersion ${dash.schemaVersion}`);
  assert.ok(dash.time.from && dash.time.to);

  const vars = new Map(dash.templating.list.map((v) => [v.name, v]));
  assert.equal(vars.get('datasource')?.type, 'datasource', 'a datasource variable');
  assert.equal(vars.get('datasource')?.query, 'prometheus', 'the datasource variable lists Prometheus data sources');
  const inst = vars.get('instance');
  assert.ok(inst && inst.type === 'query' && inst.includeAll && inst.allValue === '.*', 'an instance variable with All = .*');
  assert.equal(inst.datasource?.uid, '${datasource}');

  const ids = new Set();
  // Collapsed rows' panels are laid out for when the row is open: they are checked for
  // overlaps among themselves, the top-level panels among themselves.
  const layouts = new Map([[null, []]]);
  assert.ok(dash.panels.length > 0);
  const all = dash.panels.flatMap((p) => [{ p, row: null }, ...(p.panels ?? []).map((q) => ({ p: q, row: p.id }))]);
  for (const { p, row } of all) {
    const where = `panel ${p.id} "${p.title}"`;
    if (row !== null) assert.ok(p.type !== 'row', `${where}: a row inside row ${row}`);
    if (p.type === 'row' && !p.collapsed) assert.deepEqual(p.panels ?? [], [], `${where}: an open row holds no panels`);
    if (!layouts.has(row)) layouts.set(row, []);
    const boxes = layouts.get(row);
    assert.ok(Number.isInteger(p.id), `${where}: integer id`);
    assert.ok(!ids.has(p.id), `${where}: unique id`);
    ids.add(p.id);
    assert.ok(typeof p.type === 'string' && p.title, `${where}: type and title`);
    const g = p.gridPos;
    assert.ok(g && ['h', 'w', 'x', 'y'].every((k) => Number.isInteger(g[k]) && g[k] >= 0), `${where}: gridPos`);
    assert.ok(g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${where}: gridPos inside the 24-column grid`);
    for (const b of boxes) {
      const overlap = g.x < b.x + b.w && b.x < g.x + g.w && g.y < b.y + b.h && b.y < g.y + g.h;
      assert.ok(!overlap, `${where}: gridPos overlaps panel ${b.id}`);
    }
    boxes.push({ ...g, id: p.id });
    if (p.type === 'row') continue;
    assert.equal(p.datasource?.uid, '${datasource}', `${where}: uses the datasource variable`);
    assert.ok(p.fieldConfig?.defaults?.unit, `${where}: has a unit`);
    assert.ok(Array.isArray(p.targets) && p.targets.length > 0, `${where}: has targets`);
    const refs = new Set();
    for (const t of p.targets) {
      assert.ok(typeof t.expr === 'string' && t.expr.trim(), `${where}: every target has expr`);
      assert.ok(t.refId && !refs.has(t.refId), `${where}: unique refId`);
      refs.add(t.refId);
      assert.equal(typeof t.legendFormat, 'string', `${where}: legendFormat`);
      for (const m of t.expr.matchAll(/\$\{?(\w+)\}?/g)) assert.ok(vars.has(m[1]), `${where}: $${m[1]} is defined`);
      assert.ok(filtersOnInstance(t.expr), `${where}: every metric is selected with {instance=~"$instance", ...}: ${t.expr}`);
    }
  }

  // The per-replica panels: a collapsed row whose panels each draw one series per instance.
  const replicas = dash.panels.find((p) => p.type === 'row' && p.title === 'Replicas');
  assert.ok(replicas?.collapsed && replicas.panels.length >= 2, 'a collapsed "Replicas" row with per-replica panels');
  for (const p of replicas.panels) {
    for (const t of p.targets) {
      assert.match(t.expr, /by \(instance\b/, `panel "${p.title}": grouped by instance`);
      assert.equal(t.legendFormat, '{{instance}}', `panel "${p.title}": one legend entry per instance`);
    }
  }
  for (const title of ['Requests per second by replica', 'p99 latency by replica']) {
    assert.ok(replicas.panels.some((p) => p.title === title), `the Replicas row has "${title}"`);
  }

  // One source of truth: the top-level Grafana panels are exactly queries.json's (the
  // collapsed Replicas row's panels are Grafana's own, made by generate.py).
  const spec = load(QUERIES);
  const want = spec.sections.flatMap((s) => s.panels.map((p) => [p.title, p.targets.map((t) => t.expr)]));
  const got = dash.panels.filter((p) => p.type !== 'row').map((p) => [p.title, p.targets.map((t) => t.expr)]);
  assert.deepEqual(got, want, 'Grafana panels and queries.json differ: run python3 deploy/grafana/generate.py');
  execFileSync('python3', [path.join(ROOT, 'deploy/grafana/generate.py'), '--check'], { stdio: 'inherit' });
}
