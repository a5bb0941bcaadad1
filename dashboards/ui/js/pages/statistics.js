// Statistics: totals, success rate, mean duration, jobs by playbook and recent failures
// (`GET /jobs/statistics`), and charts of the last hours (`GET /jobs/timeline`).

import { get } from '../api.js';
import { duration, errorBox, h, when } from '../format.js';
import { durationChart, jobsPerHourChart } from '../charts.js';

const WINDOWS = [6, 24, 72, 168];

/** The figures are counters on the coordinator: cheap to read again this often. */
const REFRESH_MS = 15000;

export async function statisticsPage(root, { query }) {
  const hours = WINDOWS.includes(Number(query.get('hours'))) ? Number(query.get('hours')) : 24;
  const body = h('div');
  root.append(h('h1', {}, 'Statistics'), body);
  const load = async () => {
    try {
      const [stats, timeline] = await Promise.all([get('/jobs/statistics'), get('/jobs/timeline', { hours })]);
      body.replaceChildren(...render(stats, timeline, hours));
    } catch (error) {
      body.replaceChildren(errorBox(error));
    }
  };
  await load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function render(stats, timeline, hours) {
  const card = (label, value, id) => h('div', { class: 'card', id }, h('div', { class: 'value' }, value), h('div', { class: 'label' }, label));
  return [
    h('div', { class: 'cards' },
      card('Jobs', stats.total.toLocaleString(), 'stat-total'),
      card('Success rate', `${stats.success_rate.toFixed(1)} %`, 'stat-success-rate'),
      card('Average duration', duration(stats.average_duration), 'stat-average'),
      card('Running', stats.running, 'stat-running'),
      card('Pending', stats.pending, 'stat-pending'),
      card('Failed', stats.failed, 'stat-failed'),
      card('Cancelled', stats.cancelled, 'stat-cancelled'),
    ),
    h('div', { class: 'job-head' },
      h('h2', {}, `Last ${hours} hours (UTC hours, local time shown)`),
      h('span', { class: 'actions' }, WINDOWS.map((w) =>
        h('a', { class: 'button', href: `#/statistics?hours=${w}`, 'aria-current': w === hours ? 'true' : null }, `${w} h`)))),
    h('div', { class: 'grid2' },
      h('section', { class: 'panel' }, h('h2', {}, 'Jobs per hour'), jobsPerHourChart(timeline.buckets)),
      h('section', { class: 'panel' }, h('h2', {}, 'Mean duration of finished jobs'), durationChart(timeline.buckets)),
    ),
    h('div', { class: 'grid2' },
      h('section', { class: 'panel' }, h('h2', {}, 'By playbook'), byPlaybook(stats.by_playbook)),
      h('section', { class: 'panel' }, h('h2', {}, 'Recent failures'), recentFailures(stats.recent_failures)),
    ),
  ];
}

function byPlaybook(rows) {
  if (!rows.length) return h('p', { class: 'muted' }, 'No jobs yet.');
  return h('table', { id: 'by-playbook' },
    h('thead', {}, h('tr', {}, h('th', {}, 'Playbook'), h('th', { class: 'num' }, 'Jobs'), h('th', { class: 'num' }, 'Success'), h('th', { class: 'num' }, 'Failed'), h('th', {}, ''))),
    h('tbody', {}, rows.map((row) => {
      const bar = h('div', { class: 'bar' });
      for (const [key, value] of [['success', row.success], ['failed', row.failed], ['pending', row.total - row.success - row.failed]]) {
        const part = h('span', { class: `bg-${key}` });
        part.style.width = `${row.total ? (100 * value) / row.total : 0}%`;
        bar.append(part);
      }
      return h('tr', {},
        h('td', {}, h('a', { href: `#/jobs?playbook_id=${row.playbook_id}` }, row.playbook_name)),
        h('td', { class: 'num' }, row.total),
        h('td', { class: 'num' }, row.success),
        h('td', { class: 'num' }, row.failed),
        h('td', {}, bar));
    })));
}

function recentFailures(rows) {
  if (!rows.length) return h('p', { class: 'muted' }, 'No failures.');
  return h('table', { id: 'recent-failures' },
    h('thead', {}, h('tr', {}, ['Job', 'Playbook', 'Server', 'Failed at', 'Error'].map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((row) => h('tr', {},
      h('td', {}, h('a', { href: `#/jobs/${row.job_id}` }, `#${row.job_id}`)),
      h('td', {}, row.playbook),
      h('td', {}, row.server),
      h('td', {}, when(row.failed_at)),
      h('td', { class: 'wrap' }, row.error ?? '—')))));
}
