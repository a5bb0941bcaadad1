// Alerts: the coordinator's built-in alerts (GET /alerts), firing ones first, then the
// ones resolved lately. Refreshed every few seconds, as the coordinator re-evaluates them.

import { get } from '../api.js';
import { ago, errorBox, h, when } from '../format.js';

const REFRESH_MS = 5000;

const KINDS = {
  failure_rate: 'Failure rate',
  long_running: 'Running too long',
  consecutive_failures: 'Consecutive failures',
  no_agent: 'No agent in pool',
  queue_backlog: 'Queue backlog growing',
};

export async function alertsPage(root) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('h1', {}, 'Alerts'), body);
  const load = async () => {
    try {
      body.replaceChildren(...render(await get('/alerts')));
    } catch (error) {
      body.replaceChildren(errorBox(error));
    }
  };
  await load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

/** What an alert is about; a long-running job links to its page. */
function about(alert) {
  if (alert.kind === 'long_running') return h('a', { href: `#/jobs/${alert.subject}` }, h('code', {}, alert.subject.slice(0, 8)));
  return alert.subject || 'all jobs';
}

function table(id, alerts, resolved) {
  const columns = ['Alert', 'About', 'What', 'Since'].concat(resolved ? ['Resolved'] : []);
  return h('table', { id },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, alerts.map((alert) => h('tr', { dataset: { kind: alert.kind } },
      h('td', {}, h('span', { class: resolved ? 'alert-kind' : 'alert-kind alert-firing' }, KINDS[alert.kind] ?? alert.kind)),
      h('td', {}, about(alert)),
      h('td', { class: 'wrap' }, alert.message),
      h('td', { title: when(alert.since) }, ago(alert.since)),
      resolved ? h('td', { title: when(alert.resolved_at) }, ago(alert.resolved_at)) : null))));
}

function render(data) {
  return [
    h('section', { class: 'panel' }, h('h2', {}, `Firing (${data.firing.length})`),
      data.firing.length ? table('firing-alerts', data.firing, false) : h('p', { class: 'muted', id: 'no-alerts' }, 'Nothing is firing.')),
    h('section', { class: 'panel' }, h('h2', {}, 'Resolved lately'),
      data.resolved.length ? table('resolved-alerts', data.resolved, true) : h('p', { class: 'muted' }, 'None yet.')),
    h('p', { class: 'muted' }, 'The same alerts go out on NATS as drover.alerts.<kind>; Prometheus users have the same conditions in dashboards/prometheus/alerts.yml.'),
  ];
}
