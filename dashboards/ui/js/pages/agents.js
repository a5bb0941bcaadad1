// Agents: pools with their capacity and load, every agent with its slots, running jobs
// and last heartbeat; lost agents (silent longer than the lease) stand out. Refreshed
// every few seconds, as heartbeats are.

import { get } from '../api.js';
import { ago, errorBox, h, when } from '../format.js';

const REFRESH_MS = 5000;

export async function agentsPage(root) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  root.append(h('h1', {}, 'Agents'), body);
  const load = async () => {
    try {
      body.replaceChildren(...render(await get('/agents')).filter(Boolean));
    } catch (error) {
      body.replaceChildren(errorBox(error));
    }
  };
  await load();
  const timer = setInterval(load, REFRESH_MS);
  return () => clearInterval(timer);
}

function render(data) {
  const lost = data.agents.filter((a) => a.status !== 'up');
  return [
    h('p', { class: 'muted' }, `An agent is lost when it has sent no heartbeat for ${data.lease_seconds} s.`),
    lost.length ? h('div', { class: 'error-box', id: 'lost-agents' }, `Lost: ${lost.map((a) => a.agent_id).join(', ')}`) : null,
    h('section', { class: 'panel' }, h('h2', {}, 'Pools'),
      data.pools.length
        ? h('table', { id: 'pools' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Pool'), h('th', { class: 'num' }, 'Agents up'), h('th', { class: 'num' }, 'Busy / capacity'), h('th', {}, 'Load'), h('th', {}, 'Note'))),
          h('tbody', {}, data.pools.map((pool) => {
            const bar = h('div', { class: 'bar' });
            const used = h('span', { class: 'bg-running' });
            used.style.width = `${pool.capacity ? Math.min(100, (100 * pool.busy) / pool.capacity) : 0}%`;
            bar.append(used);
            return h('tr', {},
              h('td', {}, pool.pool),
              h('td', { class: 'num' }, pool.agents_up),
              h('td', { class: 'num' }, `${pool.busy} / ${pool.capacity}`),
              h('td', {}, bar),
              h('td', { class: 'wrap muted' }, pool.pending_reason ?? ''));
          })))
        : h('p', { class: 'muted' }, 'No agent has sent a heartbeat yet.')),
    h('section', { class: 'panel' }, h('h2', {}, 'Agents'),
      data.agents.length
        ? h('table', { id: 'agents' },
          h('thead', {}, h('tr', {}, ['Agent', 'Pool', 'State', 'Running / capacity', 'Running jobs', 'Last heartbeat', 'Version', 'Labels'].map((c) => h('th', {}, c)))),
          h('tbody', {}, data.agents.map((agent) => h('tr', { dataset: { agent: agent.agent_id } },
            h('td', {}, agent.agent_id),
            h('td', {}, agent.pool),
            h('td', { class: agent.status === 'up' ? 'agent-up' : 'agent-lost' }, agent.status),
            h('td', { class: 'num' }, `${agent.running.length} / ${agent.capacity}`),
            h('td', { class: 'wrap' }, agent.running.length ? agent.running.map((uuid) => h('div', {}, h('a', { href: `#/jobs/${uuid}` }, h('code', {}, uuid)))) : '—'),
            h('td', { title: when(agent.last_heartbeat) }, ago(agent.last_heartbeat)),
            h('td', {}, agent.version),
            h('td', {}, agent.labels.join(', ') || '—')))))
        : h('p', { class: 'muted' }, 'No agents.')),
  ];
}
