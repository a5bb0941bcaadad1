// The coordinator's HTTP API as the UI uses it. The token lives in sessionStorage: it
// lasts for this tab's session and is gone when the tab closes.

const TOKEN_KEY = 'drover.token';
const USER_KEY = 'drover.user';
const ROLES = ['viewer', 'operator', 'admin'];

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || body?.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function session() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const user = JSON.parse(sessionStorage.getItem(USER_KEY) || 'null');
  return token && user ? { token, user } : null;
}

/** True when the signed-in user has `role` or a higher one. */
export function can(role) {
  const current = session();
  return !!current && ROLES.indexOf(current.user.role) >= ROLES.indexOf(role);
}

/** Called when the coordinator no longer accepts the token (revoked, restarted store). */
let onSignedOut = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  const current = session();
  if (current) headers.Authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (response.status === 401 && current) {
    clearSession();
    onSignedOut();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data };
}

/** `GET path?query`, with empty values left out. */
export async function get(path, query = {}) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const qs = params.toString();
  return (await api(qs ? `${path}?${qs}` : path)).data;
}

export async function signIn(username, password) {
  const { data } = await api('/auth/token', { method: 'POST', body: { username, password } });
  sessionStorage.setItem(TOKEN_KEY, data.token);
  sessionStorage.setItem(USER_KEY, JSON.stringify({ username: data.user.username, role: data.user.role, id: data.user.id }));
  return data.user;
}

export async function signOut() {
  try {
    await api('/auth/token', { method: 'DELETE' });
  } catch {
    // The token may already be revoked; signing out locally is what matters.
  }
  clearSession();
}

function clearSession() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
}

/** Query string token for EventSource and WebSocket, which cannot send headers. */
export function tokenParam() {
  return `token=${encodeURIComponent(session()?.token || '')}`;
}
