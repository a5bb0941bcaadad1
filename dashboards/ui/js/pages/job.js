// One job: its header (what, where, who, status, timing, exit code, resources), the log
// streaming live over SSE into a virtual list, search and "first error" answered by the
// coordinator, the per-host recap, and the actions the user's role allows.

import { api, can, get, tokenParam } from '../api.js';
import { FINISHED, duration, errorBox, h, parseTime, statusBadge, when } from '../format.js';
import { go } from '../router.js';
import { LOG_PAGE, LogView } from '../log_view.js';

/** Matches fetched per search request. */
const SEARCH_PAGE = 500;

export async function jobPage(root, { id }) {
  let job;
  // The first page of lines is asked for with the job, not after it.
  const firstLines = get(`/jobs/${encodeURIComponent(id)}/logs`, { start_line: 0, limit: LOG_PAGE });
  firstLines.catch(() => {});
  try {
    job = await get(`/jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    root.append(h('h1', {}, `Job ${id}`), errorBox(error));
    return;
  }
  const state = { job, stream: null, ticker: null, matches: [], matchIndex: -1, matchesMore: false, term: '' };
  const notices = h('div');
  const header = h('div', { class: 'job-head' });
  const facts = h('div', { class: 'facts' });
  const hosts = h('div');
  const followButton = h('button', { type: 'button', class: 'toggle', 'aria-pressed': 'false', id: 'follow' }, 'Follow');
  const lineCount = h('span', { class: 'muted', id: 'line-count' });
  const searchInput = h('input', { type: 'search', placeholder: 'Search the log…', id: 'log-search', 'aria-label': 'search the log' });
  const searchInfo = h('span', { class: 'muted', id: 'search-info' });
  const view = new LogView({
    jobId: job.id,
    total: job.total_lines,
    onFollowChange: (on) => followButton.setAttribute('aria-pressed', String(on)),
  });
  view.prime(0, firstLines);

  const showNotice = (text, kind = 'notice') => notices.replaceChildren(h('div', { class: kind, role: 'status' }, text));

  const renderHeader = () => {
    const j = state.job;
    const actions = h('div', { class: 'actions' });
    if (can('operator')) {
      if (!FINISHED.includes(j.status)) {
        actions.append(h('button', { type: 'button', class: 'danger', id: 'cancel-job', onclick: cancel }, 'Cancel'));
      }
      if (j.status === 'failed' || j.status === 'cancelled') {
        actions.append(
          h('button', { type: 'button', id: 'retry-job', onclick: retry }, 'Retry'),
          h('button', { type: 'button', id: 'ticket-job', onclick: ticket }, 'Create ticket'),
        );
      }
    }
    header.replaceChildren(...[
      h('h1', {}, `Job #${j.id}`),
      h('span', { id: 'job-status' }, statusBadge(j.status)),
      j.retry_of ? h('a', { href: `#/jobs/${j.retry_of}`, class: 'muted' }, `retry of #${j.retry_of}`) : null,
      actions,
    ].filter(Boolean));
    const usage = j.resource_usage;
    const fact = (label, value, attrs = {}) => h('div', attrs, h('span', {}, label), value ?? '—');
    facts.replaceChildren(
      fact('Playbook', j.playbook?.name),
      fact('Server', j.server ? `${j.server.hostname} (${j.server.ip_address})` : null),
      fact('User', j.user?.username),
      fact('Created', when(j.created_at)),
      fact('Started', when(j.started_at)),
      fact('Completed', when(j.completed_at)),
      fact('Duration', duration(liveDuration(j)), { id: 'job-duration' }),
      fact('Exit code', j.exit_code ?? '—', { id: 'job-exit-code' }),
      fact('CPU user / system', usage ? `${usage.cpu_user_secs.toFixed(2)} s / ${usage.cpu_system_secs.toFixed(2)} s` : null),
      fact('Peak memory', usage ? `${(usage.max_rss_kb / 1024).toFixed(1)} MiB` : null),
      fact('Agent', j.agent_id),
      fact('UUID', h('code', {}, j.job_id)),
    );
    if (j.error) showNotice(`Error: ${j.error}`, 'error-box');
    else if (j.pending_reason) showNotice(`Waiting: ${j.pending_reason}`);
    else if (j.cancel_requested_by) showNotice(`Cancel requested by ${j.cancel_requested_by}; waiting for the agent.`);
    lineCount.textContent = `${view.total.toLocaleString()} lines`;
  };

  const renderHosts = async () => {
    try {
      const recap = await get(`/jobs/${job.id}/hosts`);
      if (!recap.hosts.length) {
        hosts.replaceChildren(h('p', { class: 'muted' }, FINISHED.includes(recap.status) ? 'No recap.' : 'The recap appears when the play ends.'));
        return;
      }
      const columns = ['ok', 'changed', 'failed', 'unreachable', 'skipped', 'rescued', 'ignored'];
      hosts.replaceChildren(h('table', { id: 'host-recap' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Host'), columns.map((c) => h('th', { class: 'num' }, c)))),
        h('tbody', {}, recap.hosts.map((host) => h('tr', {},
          h('td', {}, host.host),
          columns.map((c) => h('td', { class: 'num' }, host[c])),
        ))),
      ));
    } catch (error) {
      hosts.replaceChildren(errorBox(error));
    }
  };

  const refresh = async () => {
    try {
      state.job = await get(`/jobs/${job.id}`);
      view.setTotal(state.job.total_lines);
      renderHeader();
    } catch (error) {
      showNotice(error.message, 'error-box');
    }
  };

  async function cancel() {
    if (!confirm(`Cancel job #${job.id}?`)) return;
    try {
      const { status, data } = await api(`/jobs/${job.id}/cancel`, { method: 'POST' });
      showNotice(status === 202 ? 'Cancel requested; waiting for the agent to stop the run.' : data.message);
      await refresh();
    } catch (error) {
      showNotice(error.message, 'error-box');
    }
  }

  async function retry() {
    try {
      const { data } = await api(`/jobs/${job.id}/retry`, { method: 'POST' });
      go(`#/jobs/${data.id}`);
    } catch (error) {
      showNotice(error.message, 'error-box');
    }
  }

  function ticket() {
    const title = h('input', { name: 'title', required: true, maxlength: '200', value: `Job #${job.id} ${state.job.status} on ${state.job.server?.hostname ?? 'its server'}` });
    const description = h('textarea', { name: 'description', rows: '4' }, state.job.error ?? '');
    const priority = h('select', { name: 'priority' }, ['low', 'medium', 'high', 'critical'].map((p) => h('option', { value: p, selected: p === 'high' }, p)));
    const dialog = h('dialog', {},
      h('form', { method: 'dialog' },
        h('h2', {}, 'Create ticket'),
        h('label', {}, 'Title', title),
        h('label', {}, 'Description', description),
        h('label', {}, 'Priority', priority),
        h('div', { class: 'row' },
          h('button', { value: 'cancel', type: 'submit', formnovalidate: true }, 'Close'),
          h('button', { value: 'create', type: 'submit', class: 'primary' }, 'Create')),
      ));
    dialog.addEventListener('close', async () => {
      dialog.remove();
      if (dialog.returnValue !== 'create') return;
      try {
        const { data } = await api(`/jobs/${job.id}/ticket`, {
          method: 'POST',
          body: { title: title.value, description: description.value, priority: priority.value },
        });
        showNotice(`Ticket #${data.id} created.`);
      } catch (error) {
        showNotice(error.message, 'error-box');
      }
    });
    document.body.append(dialog);
    dialog.showModal();
  }

  const firstError = async () => {
    try {
      const data = await get(`/jobs/${job.id}/logs`, { level: 'ERROR', limit: 1 });
      if (data.logs.length) view.scrollToLine(data.logs[0].line_number);
      else showNotice('No ERROR lines in this log.');
    } catch (error) {
      showNotice(error.message, 'error-box');
    }
  };

  const runSearch = async (after = 0) => {
    const term = searchInput.value.trim();
    state.term = term;
    view.mark(term);
    if (!term) {
      state.matches = [];
      searchInfo.textContent = '';
      return;
    }
    try {
      const data = await get(`/jobs/${job.id}/logs`, { contains: term, start_line: after, limit: SEARCH_PAGE });
      const numbers = data.logs.map((line) => line.line_number);
      state.matches = after ? state.matches.concat(numbers) : numbers;
      state.matchesMore = data.has_more;
      if (!after) state.matchIndex = 0;
      showMatch();
    } catch (error) {
      searchInfo.textContent = error.message;
    }
  };

  const showMatch = () => {
    const count = `${state.matches.length}${state.matchesMore ? '+' : ''}`;
    if (!state.matches.length) {
      searchInfo.textContent = 'no matches';
      return;
    }
    searchInfo.textContent = `${state.matchIndex + 1} of ${count}`;
    view.scrollToLine(state.matches[state.matchIndex]);
  };

  const step = async (delta) => {
    if (!state.matches.length) return runSearch();
    let next = state.matchIndex + delta;
    if (next >= state.matches.length && state.matchesMore) {
      await runSearch(state.matches[state.matches.length - 1]);
    }
    next = (next + state.matches.length) % state.matches.length;
    state.matchIndex = next;
    showMatch();
  };

  searchInput.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      if (searchInput.value.trim() === state.term && state.matches.length) step(event.shiftKey ? -1 : 1);
      else runSearch();
    }
  });
  searchInput.addEventListener('search', () => { if (!searchInput.value) runSearch(); });
  followButton.addEventListener('click', () => view.setFollow(!view.follow));

  root.append(
    h('p', {}, h('a', { href: '#/jobs' }, '← Jobs')),
    header,
    notices,
    h('section', { class: 'panel' }, facts),
    h('section', { class: 'panel' },
      h('div', { class: 'log-tools' },
        h('h2', { class: 'spacer' }, 'Log ', lineCount),
        followButton,
        h('button', { type: 'button', id: 'first-error', onclick: firstError }, 'Jump to first error'),
        searchInput,
        h('button', { type: 'button', title: 'previous match (Shift+Enter)', onclick: () => step(-1) }, '↑'),
        h('button', { type: 'button', title: 'next match (Enter)', onclick: () => step(1) }, '↓'),
        searchInfo,
      ),
      view.element,
    ),
    h('section', { class: 'panel' }, h('h2', {}, 'Hosts'), hosts),
  );
  renderHeader();
  renderHosts();
  view.schedule();

  if (!FINISHED.includes(job.status)) {
    view.setFollow(true);
    state.stream = follow(job, view, {
      onLine: () => { lineCount.textContent = `${view.total.toLocaleString()} lines`; },
      onStatus: (status) => {
        state.job = { ...state.job, ...status };
        renderHeader();
      },
      onEnd: () => { refresh(); renderHosts(); },
    });
    state.ticker = setInterval(() => {
      const cell = document.getElementById('job-duration');
      if (cell && state.job.status === 'running') cell.lastChild.textContent = duration(liveDuration(state.job));
    }, 1000);
  }

  return () => {
    state.stream?.close();
    clearInterval(state.ticker);
    view.destroy();
  };
}

/** Seconds run so far: to completion, or to now while running. */
function liveDuration(job) {
  const start = parseTime(job.started_at);
  if (!start) return null;
  const end = parseTime(job.completed_at) ?? (job.status === 'running' ? new Date() : null);
  return end ? Math.max(0, (end - start) / 1000) : job.duration;
}

/** The SSE stream of lines after the ones the page already knows. */
function follow(job, view, { onLine, onStatus, onEnd }) {
  const source = new EventSource(`/jobs/${job.id}/logs/stream?${tokenParam()}&after_line=${job.total_lines}`);
  let pending = 0;
  source.addEventListener('log', (event) => {
    view.append(JSON.parse(event.data));
    // Many lines may arrive in one frame; update the count once per frame.
    if (!pending) pending = requestAnimationFrame(() => { pending = 0; onLine(); });
  });
  source.addEventListener('status', (event) => {
    const { status, exit_code } = JSON.parse(event.data);
    onStatus({ status, exit_code });
  });
  source.addEventListener('end', (event) => {
    const { status, exit_code } = JSON.parse(event.data);
    // Without close() the browser would reconnect and be told the same end again.
    source.close();
    onStatus({ status, exit_code });
    onEnd();
  });
  return source;
}
