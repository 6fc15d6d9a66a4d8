// The server's HTTP APIs the dashboard reads: the Prometheus query API, the bottleneck report,
// the V2 repository index, the recommendation API, the log search, alerting, the audit trail,
// the deployment, experiment and drift APIs, and the fleet API (this replica, the store, the
// alert evaluator, the fleet's Prometheus). Same origin, no other network access.
//
// Authentication: when the server enforces it, the token the user signed in with is kept in
// sessionStorage (this tab only, gone when it closes) and sent as `Authorization: Bearer` on
// every call; an answer 401 forgets it and calls the handler given to `onSignedOut` (the app
// shows its sign-in form again).

const TOKEN_KEY = 'recserve.token';
let signedOutHandler = () => {};

/** The token signed in with, or null. */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** `handler()` runs when the server answers 401 (no, an expired or a revoked token). */
export function onSignedOut(handler) {
  signedOutHandler = handler;
}

/** `fetch` with the bearer token, if any; a 401 forgets the token. */
async function call(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const t = token();
  if (t) headers.set('Authorization', `Bearer ${t}`);
  const resp = await fetch(path, { ...options, headers });
  if (resp.status === 401 && t) {
    forgetToken();
    signedOutHandler();
  }
  return resp;
}

/** `/api/v1/auth/status` → {enforcing, mode, identity: {name, role, id} | null}. */
export async function authStatus() {
  return (await json(await call('/api/v1/auth/status'))).data;
}

/** `POST /api/v1/auth/sign-in`: keeps the token when the server accepts it and answers
 *  {name, role, id}; a refused token throws the server's message. */
export async function signIn(secret) {
  const resp = await fetch('/api/v1/auth/sign-in', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token: secret }),
  });
  const body = await json(resp);
  sessionStorage.setItem(TOKEN_KEY, secret);
  return body.data;
}

/** The body of `path` as a Blob, with the bearer token (for downloads a link cannot authorise). */
export async function download(path) {
  const resp = await call(path);
  if (!resp.ok) await json(resp); // throws with the server's message
  return resp.blob();
}

/** An Error with `message`, the answer's HTTP `status` (pages name a 403 or a 404) and the
 *  server's own `error` text, when it gave one. */
function failure(message, status, serverError = null) {
  const err = new Error(message);
  err.status = status;
  err.serverError = serverError;
  return err;
}

async function json(resp) {
  const text = await resp.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw failure(`${resp.url}: ${resp.status} ${text.slice(0, 200)}`, resp.status);
  }
  if (!resp.ok) {
    const msg = body && (body.error || body.message);
    throw failure(`${new URL(resp.url).pathname}: ${resp.status} ${msg || text.slice(0, 200)}`, resp.status, msg || null);
  }
  return body;
}

async function promApi(path, params) {
  const resp = await call(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  const body = await json(resp);
  if (body.status !== 'success') throw new Error(`${path}: ${body.errorType}: ${body.error}`);
  return body.data;
}

/** `/api/v1/query_range` (or `path`, an API of the same shape) → [{metric, values: [[t, "v"], ...]}]. */
export async function queryRange(query, start, end, step, path = '/api/v1/query_range') {
  const data = await promApi(path, { query, start, end, step });
  return data.result || [];
}

/** `/api/v1/query` → [{metric, value: [t, "v"]}] (a scalar becomes one sample without labels). */
export async function query(query, time) {
  const data = await promApi('/api/v1/query', time == null ? { query } : { query, time });
  if (data.resultType === 'scalar') return [{ metric: {}, value: data.result }];
  return data.result || [];
}

export async function bottleneck() {
  return json(await call('/api/v1/bottleneck'));
}

/** `/api/v1/percentiles`: exact p50/p95/p99/max per target beside the bucket estimate. */
export async function percentiles(window = '60s') {
  return json(await call(`/api/v1/percentiles?window=${encodeURIComponent(window)}`));
}

export async function repositoryIndex() {
  return json(await call('/v2/repository/index', { method: 'POST', body: '{}' }));
}

export async function scenarios() {
  const body = await json(await call('/v1/scenarios'));
  return (body.scenarios || []).map((s) => (typeof s === 'string' ? s : s.name));
}

export async function recommend(request) {
  return json(
    await call('/v1/recommend', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    }),
  );
}

export async function queries() {
  return json(await call('/dashboard/queries.json'));
}

/** `path` with `params` (a URLSearchParams or a plain object) as its query. */
function withQuery(path, params) {
  const q = new URLSearchParams(params).toString();
  return q ? `${path}?${q}` : path;
}

/** The URL of `/api/v1/logs` with `params` (a URLSearchParams or a plain object). */
export function logsUrl(params) {
  return withQuery('/api/v1/logs', params);
}

/** `/api/v1/logs` → {kind, records, next_cursor}; a bad filter throws the server's message. */
export async function logs(params) {
  return success(logsUrl(params));
}

// ---- alerting: the Prometheus-shaped alerts and rules, Alertmanager v2 silences, the
// notification log and the audit trail ----

async function success(path) {
  const body = await json(await call(path));
  if (body.status !== 'success' || !body.data) throw new Error(`${path}: unexpected answer ${JSON.stringify(body).slice(0, 200)}`);
  return body.data;
}

/** `/api/v1/alerts` → [{labels, annotations, state, activeAt, value}]. */
export async function alerts() {
  return (await success('/api/v1/alerts')).alerts || [];
}

/** `/api/v1/rules` → [{name, file, interval, lastEvaluation, evaluationTime, rules: [...]}]. */
export async function rules() {
  return (await success('/api/v1/rules')).groups || [];
}

/** `POST /api/v1/rules/reload` → {ok, status, data: {groups, rules}} or {ok: false, error, errors}. */
export async function reloadRules() {
  const resp = await call('/api/v1/rules/reload', { method: 'POST' });
  const text = await resp.text();
  let body = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { error: text.slice(0, 500) };
  }
  if (resp.ok && body.status === 'success') return { ok: true, status: resp.status, data: body.data || {} };
  return { ok: false, status: resp.status, error: body.error || `HTTP ${resp.status}`, errors: Array.isArray(body.errors) ? body.errors : [] };
}

/** `/api/v2/silences` → [{id, matchers, startsAt, endsAt, createdBy, comment, updatedAt, status: {state}}]. */
export async function silences() {
  return json(await call('/api/v2/silences'));
}

/** `POST /api/v2/silences` → the new silence's id; a refused silence throws the server's message. */
export async function createSilence(silence) {
  const body = await json(
    await call('/api/v2/silences', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(silence),
    }),
  );
  return body.silenceID;
}

/** `DELETE /api/v2/silence/{id}`: expires the silence now. */
export async function expireSilence(id) {
  const resp = await call(`/api/v2/silence/${encodeURIComponent(id)}`, { method: 'DELETE' });
  if (!resp.ok) await json(resp); // throws with the server's message
  await resp.text(); // read the (empty) answer to its end
}

/** `/api/v1/audit` with `params` (start, end, actor, action prefix, outcome, limit, cursor) →
 *  {records: [{id, time_ms, actor, role, action, target, outcome, reason, details, request_id,
 *  replica}], next_cursor}, newest first. The error of a server without a store has status 404,
 *  that of a token whose role may not read it 403. */
export async function audit(params) {
  return success(withQuery('/api/v1/audit', params));
}

/** `/api/v1/notifications` → {receivers: [{target, sent, failed, dropped, queued}], log: [...]}. */
export async function notifications() {
  return success('/api/v1/notifications');
}

// ---- deployments: the deployment API, the online experiment comparison, drift ----

/** `/api/v1/deployments` → [{model, mode, description, arms: [{name, version, percent}], retired, versions}]. */
export async function deployments() {
  return success('/api/v1/deployments');
}

/** `POST /api/v1/deployments/{model}/{action}` (promote, rollback, percent, canary) with `body`
 *  → the model's deployment after the change; a refused change throws the server's message. */
export async function deploymentAction(model, action, body = {}) {
  const path = `/api/v1/deployments/${encodeURIComponent(model)}/${action}`;
  const answer = await json(
    await call(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    }),
  );
  if (!answer || !answer.data) throw new Error(`${path}: unexpected answer ${JSON.stringify(answer).slice(0, 200)}`);
  return answer.data;
}

/** `/api/v1/experiments` → {at_ms, window_ms, arms: [{pipeline, model, arm, version, ctr, ctr_interval, …, vs_control}]}. */
export async function experiments() {
  return success('/api/v1/experiments');
}

/** `/api/v1/drift` → [{model, version, reference, snapshot: {at_ms, window_ms, capturing, features, score}}]. */
export async function drift() {
  return success('/api/v1/drift');
}

// ---- the fleet: this replica, the store, the alert evaluator, the fleet's Prometheus ----

/** `/api/v1/fleet` → {replica, store, evaluation, evaluator: {holder, expires_ms, term,
 *  this_replica} | null, prometheus}. A server without the fleet API answers 404. */
export async function fleet() {
  return success('/api/v1/fleet');
}

/** `/api/v1/fleet/query_range`: the configured Prometheus's answer for the whole fleet, like
 *  `queryRange`; without a Prometheus the server answers 503 (the error's `serverError` says so). */
export async function fleetQueryRange(query, start, end, step) {
  return queryRange(query, start, end, step, '/api/v1/fleet/query_range');
}
