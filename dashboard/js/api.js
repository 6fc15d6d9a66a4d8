// The server's HTTP APIs the dashboard reads: the Prometheus query API, the bottleneck report,
// the V2 repository index, the recommendation API and the log search. Same origin, no other
// network access.

async function json(resp) {
  const text = await resp.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${resp.url}: ${resp.status} ${text.slice(0, 200)}`);
  }
  if (!resp.ok) {
    const msg = body && (body.error || body.message);
    throw new Error(`${new URL(resp.url).pathname}: ${resp.status} ${msg || text.slice(0, 200)}`);
  }
  return body;
}

async function promApi(path, params) {
  const resp = await fetch(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  const body = await json(resp);
  if (body.status !== 'success') throw new Error(`${path}: ${body.errorType}: ${body.error}`);
  return body.data;
}

/** `/api/v1/query_range` → [{metric, values: [[t, "v"], ...]}]. */
export async function queryRange(query, start, end, step) {
  const data = await promApi('/api/v1/query_range', { query, start, end, step });
  return data.result || [];
}

/** `/api/v1/query` → [{metric, value: [t, "v"]}] (a scalar becomes one sample without labels). */
export async function query(query, time) {
  const data = await promApi('/api/v1/query', time == null ? { query } : { query, time });
  if (data.resultType === 'scalar') return [{ metric: {}, value: data.result }];
  return data.result || [];
}

export async function bottleneck() {
  return json(await fetch('/api/v1/bottleneck'));
}

/** `/api/v1/percentiles`: exact p50/p95/p99/max per target beside the bucket estimate. */
export async function percentiles(window = '60s') {
  return json(await fetch(`/api/v1/percentiles?window=${encodeURIComponent(window)}`));
}

export async function repositoryIndex() {
  return json(await fetch('/v2/repository/index', { method: 'POST', body: '{}' }));
}

export async function scenarios() {
  const body = await json(await fetch('/v1/scenarios'));
  return (body.scenarios || []).map((s) => (typeof s === 'string' ? s : s.name));
}

export async function recommend(request) {
  return json(
    await fetch('/v1/recommend', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    }),
  );
}

export async function queries() {
  return json(await fetch('/dashboard/queries.json'));
}

/** The URL of `/api/v1/logs` with `params` (a URLSearchParams or a plain object). */
export function logsUrl(params) {
  const q = new URLSearchParams(params).toString();
  return q ? `/api/v1/logs?${q}` : '/api/v1/logs';
}

/** `/api/v1/logs` → {kind, records, next_cursor}; a bad filter throws the server's message. */
export async function logs(params) {
  const body = await json(await fetch(logsUrl(params)));
  if (body.status !== 'success' || !body.data) throw new Error(`/api/v1/logs: unexpected answer ${JSON.stringify(body).slice(0, 200)}`);
  return body.data;
}
