// A job's log as a virtual list: a spacer as tall as every line would be, and only the
// rows in (and just around) the viewport in the DOM, each at a fixed height. Lines come
// in pages of PAGE from `GET /jobs/{id}/logs` when their rows come into view, and live
// lines are added as the stream delivers them; a 100,000-line log costs a few dozen DOM
// nodes and the pages the reader has looked at.

import { get } from './api.js';
import { h } from './format.js';

/** Must match --row-h in app.css. */
export const ROW_HEIGHT = 20;
/** Lines per request (the API allows up to 5000). */
export const LOG_PAGE = 500;
const PAGE = LOG_PAGE;
/** Rows rendered above and below the viewport so fast scrolling shows no gaps. */
const OVERSCAN = 20;
/** Pages kept in memory; the ones farthest from the viewport are dropped first. */
const MAX_PAGES = 80;

export class LogView {
  constructor({ jobId, total, onFollowChange = () => {} }) {
    this.jobId = jobId;
    this.total = total;
    this.onFollowChange = onFollowChange;
    this.pages = new Map(); // page number → { lines: [], loading, failedAt }
    this.pool = [];
    this.follow = false;
    this.current = null; // line number highlighted by search or jump
    this.term = ''; // text marked in rows
    this.frame = 0;
    this.expectedTop = null; // where the view last scrolled itself

    this.spacer = h('div', { class: 'log-spacer' });
    this.empty = h('div', { class: 'log-empty' }, 'No log lines yet.');
    this.element = h('div', { class: 'log', tabindex: '0', role: 'log', 'aria-label': 'job log' }, this.empty, this.spacer);
    this.element.addEventListener('scroll', () => this.onScroll(), { passive: true });
    this.resizeObserver = new ResizeObserver(() => this.schedule());
    this.resizeObserver.observe(this.element);
    this.updateHeight();
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }

  setFollow(on) {
    if (this.follow === on) return;
    this.follow = on;
    this.onFollowChange(on);
    if (on) this.scrollToEnd();
  }

  /** A line from the live stream. */
  append(line) {
    const number = line.line_number;
    const page = this.page(Math.floor((number - 1) / PAGE));
    page.lines[(number - 1) % PAGE] = line;
    if (number > this.total) {
      this.total = number;
      this.updateHeight();
    }
    // Scrolled once per frame in render(), not once per line: a burst of thousands of
    // lines must not force a layout each.
    this.schedule();
  }

  setTotal(total) {
    if (total > this.total) {
      this.total = total;
      this.updateHeight();
      this.schedule();
    }
  }

  scrollToEnd() {
    this.scrollTo(this.element.scrollHeight);
  }

  scrollTo(top) {
    this.element.scrollTop = top;
    this.expectedTop = this.element.scrollTop;
    this.schedule();
  }

  /** Centres `number` in the view and highlights it. */
  scrollToLine(number) {
    this.current = number;
    this.setFollow(false);
    this.scrollTo(Math.max(0, (number - 1) * ROW_HEIGHT - this.element.clientHeight / 2 + ROW_HEIGHT / 2));
  }

  mark(term) {
    this.term = term.toLowerCase();
    this.schedule();
  }

  onScroll() {
    if (this.programmaticScroll) {
      this.expectedTop = null; // where the view last scrolled itself
    } else {
      // Scrolling up stops following; scrolling back to the end resumes it.
      const atEnd = this.element.scrollTop + this.element.clientHeight >= this.element.scrollHeight - ROW_HEIGHT;
      if (this.follow !== atEnd) this.setFollow(atEnd);
    }
    this.schedule();
  }

  updateHeight() {
    this.spacer.style.height = `${this.total * ROW_HEIGHT}px`;
    this.empty.hidden = this.total > 0;
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  page(number) {
    let page = this.pages.get(number);
    if (!page) {
      page = { lines: [], loading: false, failedAt: 0 };
      this.pages.set(number, page);
    }
    return page;
  }

  render() {
    if (this.follow) {
      this.element.scrollTop = this.element.scrollHeight;
      this.expectedTop = this.element.scrollTop;
    }
    const viewTop = this.element.scrollTop;
    const height = this.element.clientHeight || 400;
    const first = Math.max(1, Math.floor(viewTop / ROW_HEIGHT) + 1 - OVERSCAN);
    const last = Math.min(this.total, Math.ceil((viewTop + height) / ROW_HEIGHT) + OVERSCAN);
    const count = Math.max(0, last - first + 1);
    while (this.pool.length < count) {
      const row = h('div', { class: 'log-row' }, h('span', { class: 'ln' }), h('span', { class: 'txt' }));
      this.pool.push(row);
      this.spacer.append(row);
    }
    while (this.pool.length > count) this.pool.pop().remove();
    const wanted = new Set();
    for (let i = 0; i < count; i++) {
      const number = first + i;
      const pageNumber = Math.floor((number - 1) / PAGE);
      const line = this.pages.get(pageNumber)?.lines[(number - 1) % PAGE];
      if (!line) wanted.add(pageNumber);
      this.paint(this.pool[i], number, line);
    }
    for (const pageNumber of wanted) this.load(pageNumber);
    this.evict(Math.floor((first - 1) / PAGE));
  }

  paint(row, number, line) {
    const key = `${number}|${line ? line.id : '-'}|${number === this.current}|${this.term}`;
    row.style.top = `${(number - 1) * ROW_HEIGHT}px`;
    if (row.dataset.key === key) return;
    row.dataset.key = key;
    row.dataset.line = number;
    row.className = 'log-row';
    if (number === this.current) row.classList.add('current');
    const [gutter, text] = row.children;
    gutter.textContent = number;
    if (!line) {
      row.classList.add('pending');
      text.textContent = '…';
      return;
    }
    row.classList.add('loaded', `lvl-${line.log_level}`);
    row.dataset.level = line.log_level;
    if (!this.term) {
      text.textContent = line.content;
      return;
    }
    // Mark every occurrence of the search term, built as text nodes (never as HTML).
    text.replaceChildren();
    const content = line.content;
    const lower = content.toLowerCase();
    let at = 0;
    for (let found = lower.indexOf(this.term); found !== -1; found = lower.indexOf(this.term, at)) {
      text.append(content.slice(at, found), h('mark', {}, content.slice(found, found + this.term.length)));
      at = found + this.term.length;
    }
    text.append(content.slice(at));
  }

  /** Uses `request`, already sent, for page `pageNumber` instead of asking again. */
  prime(pageNumber, request) {
    this.load(pageNumber, request);
  }

  async load(pageNumber, request = null) {
    const page = this.page(pageNumber);
    // A page that just failed (or was just fetched short) waits a second before retrying.
    if (page.loading || Date.now() - page.failedAt < 1000) return;
    page.loading = true;
    try {
      const data = await (request ?? get(`/jobs/${this.jobId}/logs`, { start_line: pageNumber * PAGE, limit: PAGE }));
      for (const line of data.logs) page.lines[(line.line_number - 1) % PAGE] = line;
      this.setTotal(data.total_lines);
      if (data.logs.length < PAGE && (pageNumber + 1) * PAGE <= this.total) page.failedAt = Date.now();
    } catch {
      page.failedAt = Date.now();
    } finally {
      page.loading = false;
      this.schedule();
    }
  }

  evict(near) {
    if (this.pages.size <= MAX_PAGES) return;
    const far = [...this.pages.keys()]
      .filter((n) => !this.pages.get(n).loading)
      .sort((a, b) => Math.abs(b - near) - Math.abs(a - near));
    for (const n of far.slice(0, this.pages.size - MAX_PAGES)) this.pages.delete(n);
  }
}
