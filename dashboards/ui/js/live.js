// Status changes of all jobs over the coordinator's WebSocket (`GET /ws`), for lists
// that update themselves. When the socket cannot be opened or drops, the caller's poll
// function runs every few seconds until the socket is back.

import { tokenParam } from './api.js';

const POLL_MS = 5000;
const RECONNECT_MS = 3000;

/**
 * Calls onStatus({job_id, status, exit_code}) for every status change; onState(true|false)
 * says whether updates are live. Returns a function that stops everything.
 */
export function watchStatuses({ onStatus, onState = () => {}, poll }) {
  let socket = null;
  let pollTimer = null;
  let reconnectTimer = null;
  let stopped = false;
  let wasLive = false;

  const startPolling = () => {
    if (!pollTimer && poll) pollTimer = setInterval(poll, POLL_MS);
  };
  const stopPolling = () => {
    clearInterval(pollTimer);
    pollTimer = null;
  };

  const connect = () => {
    if (stopped) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    try {
      socket = new WebSocket(`${scheme}://${location.host}/ws?${tokenParam()}`);
    } catch {
      startPolling();
      return;
    }
    socket.addEventListener('open', () => {
      socket.send(JSON.stringify({ action: 'subscribe', statuses: true }));
    });
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(event.data);
      if (message.type === 'subscribed') {
        stopPolling();
        onState(true);
        // Changes made while a former socket was down were missed: catch up once.
        if (wasLive) poll?.();
        wasLive = true;
      } else if (message.type === 'status') {
        onStatus(message);
      }
    });
    socket.addEventListener('close', () => {
      onState(false);
      if (stopped) return;
      startPolling();
      reconnectTimer = setTimeout(connect, RECONNECT_MS);
    });
  };

  connect();
  return () => {
    stopped = true;
    clearTimeout(reconnectTimer);
    stopPolling();
    socket?.close();
  };
}
