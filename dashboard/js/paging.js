// What the Logs and Audit pages share: a search form whose filters live in the URL hash, the
// records of one search loaded a page at a time with the server's next_cursor ("Load more"),
// rows that open to show their details, and the search's state on the table (`data-state`:
// loading, done or error; the browser test waits on it). A newer search drops the answer of an
// older one.
//
// A page extends `CursorSearch` and defines `filters()` (the form's values), `hash(filters)`
// (their `#page?…`), `open(params)` (fill the form from the hash, then search), `fetchRecords(params)`
// (one page from the API: {records, next_cursor}) and `renderBody()`; it may define
// `failureText(err)`.

export class CursorSearch {
  /** `ids`: the element ids of the `form`, the `table`, the `error` box and the `more` button. */
  constructor(ids) {
    this.form = document.getElementById(ids.form);
    this.table = document.getElementById(ids.table);
    this.errorBox = document.getElementById(ids.error);
    this.moreButton = document.getElementById(ids.more);
    this.records = [];
    this.expanded = new Set();
    this.params = null; // the server parameters of the search shown (without cursor)
    this.cursor = null;
    this.seq = 0;
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.moreButton.addEventListener('click', () => this.more());
  }

  /** Shows `hash` (one of this page's): a history entry without a second load. */
  go(hash) {
    if (location.hash !== hash) history.pushState(null, '', hash);
    this.open(new URLSearchParams(hash.split('?')[1] || ''));
  }

  submit() {
    this.go(this.hash(this.filters()));
  }

  /** Starts a search with the server parameters `params`: forgets the rows shown, loads a page. */
  async search(params) {
    const seq = ++this.seq;
    this.params = params;
    this.cursor = null;
    this.records = [];
    this.expanded.clear();
    this.table.dataset.query = params.toString();
    this.table.dataset.state = 'loading';
    this.renderBody();
    await this.fetchPage(seq, params);
  }

  /** The next (older) page of the search shown. */
  async more() {
    if (!this.cursor || !this.params) return;
    const p = new URLSearchParams(this.params);
    p.set('cursor', this.cursor);
    await this.fetchPage(this.seq, p);
  }

  async fetchPage(seq, p) {
    this.table.dataset.state = 'loading';
    this.moreButton.disabled = true;
    this.errorBox.textContent = '';
    try {
      const data = await this.fetchRecords(p);
      if (seq !== this.seq) return; // a newer search replaced this one
      this.records.push(...(data.records || []));
      this.cursor = data.next_cursor || null;
      this.table.dataset.state = 'done';
    } catch (err) {
      if (seq !== this.seq) return;
      this.cursor = null;
      if (!p.has('cursor')) this.records = []; // a failed "more" page keeps the rows shown
      this.errorBox.textContent = this.failureText(err);
      this.table.dataset.state = 'error';
    }
    this.moreButton.hidden = !this.cursor;
    this.moreButton.disabled = false;
    this.renderBody();
  }

  /** What the page says for a failed search: the server's message. */
  failureText(err) {
    return String(err.message || err);
  }

  /** A click on record `r`'s row opens or closes its details (a click on a link navigates). */
  toggle(ev, r) {
    if (ev.target.closest('a')) return;
    if (this.expanded.has(r)) this.expanded.delete(r);
    else this.expanded.add(r);
    this.renderBody();
  }
}
