// The job list: the spec's filters (status, playbook, server, user, created after and
// before), pages, and statuses that change in place as the WebSocket reports them.
// Filters and page live in the URL (#/jobs?status=failed&page=2), so a view can be shared.

import { can, get } from '../api.js';
import { ago, errorBox, h, statusBadge, when } from '../format.js';
import { go } from '../router.js';
import { watchStatuses } from '../live.js';

const PER_PAGE = 20;
const STATUSES = ['pending', 'running', 'success', 'failed', 'cancelled'];
/** Reloads of the list caused by unknown jobs' events, at most this often. */
const RELOAD_MS = 2000;

export async function jobsPage(root, { query }) {
  const filters = Object.fromEntries(query.entries());
  const page = Math.max(1, Number(filters.page) || 1);
  const liveDot = h('span', { class: 'live-dot', title: 'live updates' });
  const liveLabel = h('span', { class: 'muted', id: 'live-state' }, 'connecting…');
  const tableHolder = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const pager = h('div', { class: 'pager' });
  const form = await filterForm(filters);
  root.append(
    h('div', { class: 'job-head' }, h('h1', {}, 'Jobs'), h('span', { class: 'actions' }, liveDot, liveLabel)),
    h('section', { class: 'panel' }, form, tableHolder, pager),
  );

  const rows = new Map(); // job id → status cell
  let reloadTimer = null;
  let lastReload = 0;

  const load = async () => {
    lastReload = Date.now();
    try {
      const data = await get('/jobs', { ...apiFilters(filters), page, per_page: PER_PAGE });
      renderTable(data.items);
      renderPager(data.pagination);
    } catch (error) {
      tableHolder.replaceChildren(errorBox(error));
    }
  };

  const renderTable = (items) => {
    rows.clear();
    if (!items.length) {
      tableHolder.replaceChildren(h('p', { class: 'muted' }, 'No jobs match.'));
      return;
    }
    tableHolder.replaceChildren(h('table', { id: 'jobs-table' },
      h('thead', {}, h('tr', {}, ['#', 'Status', 'Playbook', 'Server', 'User', 'Created', 'Started', 'Exit'].map((c) => h('th', {}, c)))),
      h('tbody', {}, items.map((job) => {
        const statusCell = h('td', {}, statusBadge(job.status));
        const exitCell = h('td', { class: 'num' }, job.exit_code ?? '');
        rows.set(job.id, { statusCell, exitCell });
        return h('tr', { dataset: { job: job.id } },
          h('td', {}, h('a', { href: `#/jobs/${job.id}` }, `#${job.id}`)),
          statusCell,
          h('td', {}, job.playbook?.name ?? '—'),
          h('td', {}, job.server?.hostname ?? '—'),
          h('td', {}, job.user?.username ?? '—'),
          h('td', { title: when(job.created_at) }, ago(job.created_at)),
          h('td', {}, when(job.started_at)),
          exitCell,
        );
      })),
    ));
  };

  const renderPager = ({ page: current, pages, total }) => {
    const to = (n) => () => go(`#/jobs?${new URLSearchParams({ ...filters, page: n })}`);
    pager.replaceChildren(
      h('button', { type: 'button', disabled: current <= 1, onclick: to(current - 1) }, '← Newer'),
      h('span', { class: 'muted' }, `page ${current} of ${Math.max(pages, 1)} · ${total} jobs`),
      h('button', { type: 'button', disabled: current >= pages, onclick: to(current + 1) }, 'Older →'),
    );
  };

  const onStatus = (event) => {
    const row = rows.get(event.job_id);
    if (row) {
      row.statusCell.replaceChildren(statusBadge(event.status));
      row.exitCell.textContent = event.exit_code ?? '';
      // A status filter no longer matches this row: the list needs a fresh page.
      if (!filters.status || filters.status === event.status) return;
    }
    // A job this page does not show changed (a new one, perhaps): reload, but not for
    // every event of a busy coordinator.
    if (reloadTimer) return;
    const wait = Math.max(0, RELOAD_MS - (Date.now() - lastReload));
    reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, wait);
  };

  await load();
  const stop = watchStatuses({
    onStatus,
    poll: load,
    onState: (live) => {
      liveDot.classList.toggle('on', live);
      liveLabel.textContent = live ? 'live' : 'polling';
    },
  });
  return () => {
    stop();
    clearTimeout(reloadTimer);
  };
}

/** The URL's filters as the API takes them: local datetime inputs become UTC times. */
function apiFilters(filters) {
  const out = {};
  for (const key of ['status', 'playbook_id', 'server_id', 'user_id']) {
    if (filters[key]) out[key] = filters[key];
  }
  for (const key of ['created_after', 'created_before']) {
    if (filters[key]) {
      const date = new Date(filters[key]);
      if (!Number.isNaN(date.getTime())) out[key] = date.toISOString().replace(/\.\d+Z$/, 'Z');
    }
  }
  return out;
}

async function filterForm(filters) {
  const options = (items, label) => [h('option', { value: '' }, 'any'), ...items.map(([value, text]) =>
    h('option', { value, selected: String(value) === filters[label] }, text))];
  const [playbooks, servers, users] = await Promise.all([
    get('/playbooks', { per_page: 100 }).then((d) => d.items).catch(() => []),
    get('/servers', { per_page: 100 }).then((d) => d.items).catch(() => []),
    // Only admins may list users; others filter by a user id.
    can('admin') ? get('/users', { per_page: 100 }).then((d) => d.items).catch(() => null) : null,
  ]);
  const userField = users
    ? h('select', { name: 'user_id' }, options(users.map((u) => [u.id, u.username]), 'user_id'))
    : h('input', { name: 'user_id', type: 'number', min: '1', placeholder: 'id', value: filters.user_id ?? '' });
  const form = h('form', { class: 'filters', id: 'job-filters' },
    h('label', {}, 'Status', h('select', { name: 'status' }, options(STATUSES.map((s) => [s, s]), 'status'))),
    h('label', {}, 'Playbook', h('select', { name: 'playbook_id' }, options(playbooks.map((p) => [p.id, p.name]), 'playbook_id'))),
    h('label', {}, 'Server', h('select', { name: 'server_id' }, options(servers.map((s) => [s.id, s.hostname]), 'server_id'))),
    h('label', {}, 'User', userField),
    h('label', {}, 'Created after', h('input', { name: 'created_after', type: 'datetime-local', step: '1', value: filters.created_after ?? '' })),
    h('label', {}, 'Created before', h('input', { name: 'created_before', type: 'datetime-local', step: '1', value: filters.created_before ?? '' })),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('button', { type: 'button', onclick: () => go('#/jobs') }, 'Clear'),
  );
  form.addEventListener('change', () => form.requestSubmit());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = {};
    for (const [key, value] of new FormData(form)) if (value) chosen[key] = value;
    go(`#/jobs?${new URLSearchParams(chosen)}`);
  });
  return form;
}
