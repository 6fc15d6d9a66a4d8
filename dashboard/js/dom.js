// DOM helpers shared by the pages that build their tables in code (alerts.js, logs.js,
// audit.js, deployments.js, charts.js).

/** A new element: `attrs` (`class`, `text`, `data` (an object of data-* values), any other
 *  attribute; null values are left out) and `children` (nodes or strings; null left out). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'data') Object.assign(e.dataset, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

/** Appends to `tbody` one row of `columns` cells saying `text` (a table with nothing to list). */
export function emptyRow(tbody, columns, text) {
  tbody.append(el('tr', { class: 'empty' }, el('td', { class: 'muted', colspan: String(columns), text })));
}

/** A `<dl class="fields">` and `add(name, value)`, which appends a term and its value (a node or
 *  text; null and '' are left out): the field lists of a row's details. */
export function fieldList() {
  const dl = el('dl', { class: 'fields' });
  const add = (name, value) => {
    if (value == null || value === '') return;
    dl.append(el('dt', { text: name }), el('dd', {}, value instanceof Node ? value : document.createTextNode(String(value))));
  };
  return { dl, add };
}
