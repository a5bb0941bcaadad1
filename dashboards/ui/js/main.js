// Drover's web UI: hash routes to pages, a sign-in guard, and the top bar showing who is
// signed in. Pages: api.js talks to the coordinator, log_view.js draws long logs,
// live.js follows job statuses, charts.js draws the statistics.

import { session, signOut, whenSignedOut } from './api.js';
import { route, start } from './router.js';
import { signinPage } from './pages/signin.js';
import { jobsPage } from './pages/jobs.js';
import { jobPage } from './pages/job.js';
import { statisticsPage } from './pages/statistics.js';
import { agentsPage } from './pages/agents.js';
import { alertsPage } from './pages/alerts.js';

route('/signin', signinPage, 'signin');
route('/jobs', jobsPage, 'jobs');
route('/jobs/:id', jobPage, 'jobs');
route('/statistics', statisticsPage, 'statistics');
route('/agents', agentsPage, 'agents');
route('/alerts', alertsPage, 'alerts');

function showWho() {
  const current = session();
  document.getElementById('nav').hidden = !current;
  document.getElementById('who').hidden = !current;
  document.getElementById('who-name').textContent = current?.user.username ?? '';
  document.getElementById('who-role').textContent = current?.user.role ?? '';
}

/** Every page but sign-in needs a session; sign-in returns to where the user was. */
function guard(path) {
  showWho();
  if (path === '/signin') return null;
  if (!session()) return `/signin?next=${encodeURIComponent(path)}`;
  return null;
}

document.getElementById('sign-out').addEventListener('click', async () => {
  await signOut();
  location.hash = '#/signin';
});
whenSignedOut(() => { location.hash = '#/signin'; });

start(document.getElementById('app'), guard);
