// Browser test of Drover's web UI in headless Chromium (Debian's /usr/bin/chromium),
// driven by playwright-core. tests/tests/browser.rs starts a real stack, makes the jobs
// and users named in the environment, runs this script and expects exit code 0.
//
// Environment: DROVER_URL, DROVER_OPERATOR / DROVER_OPERATOR_PASSWORD,
// DROVER_VIEWER / DROVER_VIEWER_PASSWORD, DROVER_RUNNING_JOB (the operator cancels it),
// DROVER_OTHER_RUNNING_JOB (the viewer looks at it), DROVER_FAILED_JOB,
// DROVER_BIG_JOB and DROVER_BIG_JOB_LINES (a finished job with a long log),
// DROVER_ARTIFACTS (where screenshots go).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const URL = env('DROVER_URL');
const ARTIFACTS = env('DROVER_ARTIFACTS');
const RUNNING = env('DROVER_RUNNING_JOB');
const OTHER_RUNNING = env('DROVER_OTHER_RUNNING_JOB');
const FAILED = env('DROVER_FAILED_JOB');
const BIG = env('DROVER_BIG_JOB');
const BIG_LINES = Number(env('DROVER_BIG_JOB_LINES'));
const CHROMIUM = process.env.DROVER_CHROMIUM || '/usr/bin/chromium';
/** Longest wait for anything the UI should show. */
const TIMEOUT = 30_000;

mkdirSync(ARTIFACTS, { recursive: true });
const started = Date.now();
const log = (message) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${message}`);
function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
page.setDefaultTimeout(TIMEOUT);
const problems = [];
page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
page.on('console', (message) => {
  // The wrong password below is answered 401, which Chromium logs as a failed load.
  if (message.type() === 'error' && !message.text().includes('status of 401')) {
    problems.push(`console error: ${message.text()}`);
  }
});
// The Cancel button asks for confirmation.
page.on('dialog', (dialog) => dialog.accept());

const shot = async (name) => {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  log(`screenshot ${path}`);
};

async function signIn(user, password) {
  await page.waitForSelector('#username');
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('#sign-in');
  await page.waitForFunction((name) => !document.querySelector('#who').hidden
    && document.querySelector('#who-name').textContent === name, user);
}

/** Highest line number of a loaded log row in the DOM. */
const lastLoadedLine = () => page.$$eval('.log-row.loaded', (rows) => Math.max(0, ...rows.map((r) => Number(r.dataset.line))));

try {
  // 1. Sign in: / redirects to the UI, which asks for credentials.
  await page.goto(`${URL}/`);
  check(page.url().startsWith(`${URL}/ui/`), `/ redirects to /ui/ (at ${page.url()})`);
  await page.waitForSelector('#username');
  check(await page.isHidden('#nav') && await page.isHidden('#sign-out'), 'no navigation before signing in');
  await shot('signin');
  await page.fill('#username', env('DROVER_OPERATOR'));
  await page.fill('#password', 'not-the-password');
  await page.click('#sign-in');
  await page.waitForSelector('.signin .error-box');
  log('a wrong password is refused');
  await page.fill('#password', env('DROVER_OPERATOR_PASSWORD'));
  await page.click('#sign-in');
  await page.waitForSelector('#who-name:not(:empty)');
  log(`signed in as ${await page.textContent('#who-name')} (${await page.textContent('#who-role')})`);

  // 2. Jobs list: the running job is there, and status updates are live (WebSocket).
  await page.waitForSelector(`#jobs-table tr[data-job="${RUNNING}"] [data-status="running"]`);
  await page.waitForFunction(() => document.querySelector('#live-state')?.textContent === 'live');
  log('jobs list shows the running job; live updates over the WebSocket');
  await page.selectOption('#job-filters select[name=status]', 'failed');
  await page.waitForFunction(() => location.hash.includes('status=failed'));
  await page.waitForSelector(`#jobs-table tr[data-job="${RUNNING}"]`, { state: 'detached' });
  await page.waitForSelector(`#jobs-table tr[data-job="${FAILED}"] [data-status="failed"]`);
  log('the status filter shows the failed job only, and is kept in the URL');
  await page.click('text=Clear');
  await page.waitForSelector(`#jobs-table tr[data-job="${RUNNING}"]`);
  await shot('jobs');

  // 3. The running job: lines arrive live over SSE and the view follows them.
  await page.click(`#jobs-table a[href="#/jobs/${RUNNING}"]`);
  await page.waitForSelector('.log-row.loaded');
  check((await page.getAttribute('#follow', 'aria-pressed')) === 'true', 'a running job is followed');
  const before = await lastLoadedLine();
  await page.waitForFunction((n) => [...document.querySelectorAll('.log-row.loaded')].some((r) => Number(r.dataset.line) > n), before);
  log(`new log lines appear live: line ${before} then ${await lastLoadedLine()}`);
  await shot('job');

  // 4. The operator cancels it; the page shows it cancelled and the Cancel button goes.
  await page.click('#cancel-job');
  await page.waitForSelector('#job-status [data-status="cancelled"]');
  await page.waitForSelector('#cancel-job', { state: 'detached' });
  await page.waitForSelector('#retry-job');
  log('cancelled by the operator; Retry and Create ticket are offered');
  await page.click('#ticket-job');
  await page.fill('dialog input[name=title]', 'Deploy cancelled on web-03');
  await page.click('dialog button[value=create]');
  await page.waitForSelector('text=/Ticket #\\d+ created/');
  log('a ticket was created from the cancelled job');

  // 5. Jump to the first error of the failed job.
  await page.goto(`${URL}/ui/#/jobs/${FAILED}`);
  await page.waitForSelector('.log-row.loaded');
  await page.click('#first-error');
  await page.waitForSelector('.log-row.current.lvl-ERROR');
  log(`first error: line ${await page.getAttribute('.log-row.current', 'data-line')}: ${await page.textContent('.log-row.current .txt')}`);
  await page.waitForSelector('#host-recap');
  await page.click('#retry-job');
  await page.waitForFunction((id) => /^#\/jobs\/\d+$/.test(location.hash) && location.hash !== `#/jobs/${id}`, FAILED);
  await page.waitForSelector('#job-status [data-status="failed"]');
  log(`Retry made ${page.url().split('#')[1]}, which the page followed until it failed`);

  // 6. The job list follows statuses live: a job made behind its back shows up and
  //    changes status without a reload by the user.
  await page.click('a[data-nav="jobs"]');
  await page.waitForFunction(() => document.querySelector('#live-state')?.textContent === 'live');
  const retried = await page.evaluate(async (id) => {
    const token = sessionStorage.getItem('drover.token');
    const response = await fetch(`/jobs/${id}/retry`, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    return (await response.json()).id;
  }, FAILED);
  await page.waitForSelector(`#jobs-table tr[data-job="${retried}"] [data-status="failed"]`);
  log(`the job list showed job ${retried} appear and fail, live`);

  // 7. Statistics, agents and alerts.
  await page.click('a[data-nav="statistics"]');
  await page.waitForSelector('#chart-jobs-per-hour svg rect');
  await page.waitForSelector('#recent-failures');
  log(`statistics: ${await page.textContent('#stat-total .value')} jobs, success rate ${await page.textContent('#stat-success-rate .value')}`);
  await shot('statistics');
  await page.click('a[data-nav="agents"]');
  await page.waitForSelector('#agents td.agent-up');
  await shot('agents');
  log('agents page lists the agent as up');
  // Three failures of one playbook in a row: the built-in alert fires.
  await page.click('a[data-nav="alerts"]');
  await page.waitForSelector('#firing-alerts tr[data-kind="consecutive_failures"]', { timeout: 15000 });
  await shot('alerts');
  log(`alerts page: ${(await page.textContent('#firing-alerts tr[data-kind="consecutive_failures"]')).trim()}`);

  // 8. A 100,000-line job: time from navigation to the first log row on screen.
  await page.goto('about:blank');
  const navigated = Date.now();
  await page.goto(`${URL}/ui/#/jobs/${BIG}`);
  const inPage = await page.waitForFunction(() => {
    const row = document.querySelector('.log-row.loaded[data-line="1"]');
    return row && row.getBoundingClientRect().height > 0 ? performance.now() : false;
  }, null, { polling: 'raf' });
  const firstLineMs = Math.round(await inPage.jsonValue());
  const wallMs = Date.now() - navigated;
  console.log(`ui: first log line of a ${BIG_LINES}-line job in ${firstLineMs} ms (navigation start to row on screen; ${wallMs} ms as the test driver saw it)`);
  const phases = await page.evaluate(() => {
    const at = (part) => Math.round(performance.getEntriesByType('resource').find((e) => e.name.includes(part))?.responseEnd ?? -1);
    const nav = performance.getEntriesByType('navigation')[0];
    return `document ${Math.round(nav.responseEnd)} ms, modules loaded ${Math.round(nav.domContentLoadedEventEnd)} ms, job ${at('/jobs/')} ms, first 500 lines ${at('/logs?')} ms`;
  });
  log(`where that time went, from the navigation's start: ${phases}`);
  const counted = () => page.evaluate(() => ({ rows: document.querySelectorAll('.log-row').length, nodes: document.getElementsByTagName('*').length }));
  const atStart = await counted();
  check(atStart.rows < 500, `few log rows in the DOM (${atStart.rows})`);
  check((await page.textContent('#line-count')).replace(/\D/g, '') === String(BIG_LINES), 'the line count shows every line');
  await page.$eval('.log', (log) => { log.scrollTop = log.scrollHeight; });
  await page.waitForSelector(`.log-row.loaded[data-line="${BIG_LINES}"]`);
  const lastVisible = await page.$eval(`.log-row[data-line="${BIG_LINES}"]`, (row) => {
    const box = row.getBoundingClientRect();
    const view = document.querySelector('.log').getBoundingClientRect();
    return box.top >= view.top && box.bottom <= view.bottom + 1;
  });
  check(lastVisible, `line ${BIG_LINES} is on screen after scrolling to the end`);
  const atEnd = await counted();
  check(atEnd.rows < 500, `few log rows in the DOM at the end (${atEnd.rows})`);
  log(`scrolled to line ${BIG_LINES}; ${atEnd.rows} log rows and ${atEnd.nodes} elements in the DOM`);
  await page.fill('#log-search', 'drover-line-77777');
  await page.press('#log-search', 'Enter');
  await page.waitForFunction(() => document.querySelector('.log-row.current .txt')?.textContent.includes('drover-line-77777'));
  log(`search: ${await page.textContent('#search-info')} at line ${await page.getAttribute('.log-row.current', 'data-line')}`);
  await shot('job-100k');

  // 9. The viewer: signs in after the operator signs out, sees no Cancel button on a
  //    running job and no Retry or Create ticket on a cancelled one.
  await page.click('#sign-out');
  await page.waitForSelector('#username');
  await signIn(env('DROVER_VIEWER'), env('DROVER_VIEWER_PASSWORD'));
  await page.goto(`${URL}/ui/#/jobs/${OTHER_RUNNING}`);
  await page.waitForSelector('#job-status [data-status="running"]');
  await page.waitForSelector('.log-row.loaded');
  check(!(await page.$('#cancel-job')), 'a viewer sees no Cancel button on a running job');
  await page.goto(`${URL}/ui/#/jobs/${RUNNING}`);
  await page.waitForSelector('#job-status [data-status="cancelled"]');
  check(!(await page.$('#retry-job')) && !(await page.$('#ticket-job')), 'a viewer sees no Retry or Create ticket');
  await shot('job-viewer');
  log('the viewer sees no Cancel, Retry or Create ticket button');

  check(problems.length === 0, `no errors in the page:\n${problems.join('\n')}`);
  log('all browser checks passed');
} catch (error) {
  console.error(`browser test failed: ${error.stack || error}`);
  if (problems.length) console.error(`page problems:\n${problems.join('\n')}`);
  await page.screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(`page at failure: ${page.url()} (screenshot ${join(ARTIFACTS, 'failure.png')})`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
