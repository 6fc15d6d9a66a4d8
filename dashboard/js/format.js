// Number formatting by Grafana unit id (the units queries.json uses).

const SI = [
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

function trim(v, digits) {
  if (!Number.isFinite(v)) return '–';
  const abs = Math.abs(v);
  if (Number.isInteger(v)) return String(v);
  const d = abs >= 100 ? 0 : abs >= 10 ? 1 : digits;
  return v.toFixed(d);
}

export function short(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  for (const [f, s] of SI) if (Math.abs(v) >= f) return trim(v / f, 2) + s;
  return trim(v, 2);
}

export function seconds(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const abs = Math.abs(v);
  if (abs === 0) return '0 s';
  if (abs < 1e-3) return trim(v * 1e6, 1) + ' µs';
  if (abs < 1) return trim(v * 1e3, 2) + ' ms';
  return trim(v, 2) + ' s';
}

export function bytes(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return trim(v, 1) + ' ' + units[i];
}

export function percent(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  const p = v * 100;
  return (Math.abs(p) >= 10 || p === 0 ? p.toFixed(0) : p.toFixed(1)) + '%';
}

export function reqps(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  return short(v) + '/s';
}

/** The formatter of a Grafana unit id. */
export function formatter(unit) {
  switch (unit) {
    case 's':
      return seconds;
    case 'bytes':
      return bytes;
    case 'percentunit':
      return percent;
    case 'reqps':
      return reqps;
    default:
      return short;
  }
}

function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}

/** A time (milliseconds since the epoch) as local `YYYY-MM-DD HH:MM:SS.mmm`. */
export function dateTime(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return '–';
  const d = new Date(Number(ms));
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

/** A time (milliseconds since the epoch) as local `HH:MM:SS.mmm` (the date when not today). */
export function clock(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return '–';
  const full = dateTime(ms);
  const today = dateTime(Date.now()).slice(0, 10);
  return full.startsWith(today) ? full.slice(11) : full;
}

/** Milliseconds as the `seconds` formatter shows them. */
export function millis(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return '–';
  return seconds(Number(ms) / 1000);
}
