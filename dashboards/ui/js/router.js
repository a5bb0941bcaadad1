// Hash routing: #/jobs, #/jobs/42, #/statistics, #/agents, #/signin. Each page is a
// function (root, params) that renders into root and may return a cleanup function,
// called when the user leaves the page (to close streams and timers).

const routes = [];
let cleanup = null;
let root = null;
let guard = null;
/** Counts renders, so a page that finishes loading after the user left is cleaned up. */
let generation = 0;

export function route(pattern, page, name) {
  const keys = [];
  const regex = new RegExp(
    '^' + pattern.replace(/:(\w+)/g, (_, key) => { keys.push(key); return '([^/]+)'; }) + '$',
  );
  routes.push({ regex, keys, page, name });
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

/** `check(path)` runs before every page and may return another path to go to instead. */
export function start(element, check) {
  root = element;
  guard = check;
  window.addEventListener('hashchange', render);
  render();
}

async function render() {
  const [path, search = ''] = (location.hash.slice(1) || '/jobs').split('?');
  const redirect = guard?.(path);
  if (redirect && redirect !== path) {
    location.hash = redirect;
    return;
  }
  if (cleanup) {
    try { cleanup(); } catch { /* a page's cleanup must not stop navigation */ }
    cleanup = null;
  }
  for (const { regex, keys, page, name } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(keys.map((key, i) => [key, decodeURIComponent(match[i + 1])]));
    params.query = new URLSearchParams(search);
    for (const link of document.querySelectorAll('[data-nav]')) {
      link.classList.toggle('active', link.dataset.nav === name);
    }
    root.replaceChildren();
    const mine = ++generation;
    const result = await page(root, params);
    const done = typeof result === 'function' ? result : null;
    if (mine === generation) cleanup = done;
    else done?.();
    return;
  }
  location.hash = '#/jobs';
}
