// Drives the Carapulse web UI in headless Chromium: sign in with a token, see the plan waiting on
// the dashboard, approve it on its page while a second tab watches the execution, and see that
// tab turn to "succeeded" with the tool's log lines and its analysis chart, without reloading. Then the audit, policy,
// integrations and context pages. Screenshots go to SCREENSHOT_DIR.
//
// Waits use locators, not waitForFunction: the UI's CSP forbids eval, which page-world polling
// needs, and the test must run under the real CSP.
//
// Started by crates/gateway/tests/ui_browser.rs, which provides a real gateway (UI listener),
// tool router, orchestrator worker, Temporal dev server and the plan/execution under test:
//   UI_URL, APPROVER_TOKEN, OPERATOR_TOKEN, PLAN_ID, PLAN_SUMMARY, EXECUTION_ID, SCREENSHOT_DIR
// Last, an operator starts work from the "New plan" form (a catalogue workflow with its
// generated form, previewed first), the approver approves it, and the operator executes it and
// follows it to "succeeded".
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const UI = env('UI_URL');
const TOKEN = env('APPROVER_TOKEN');
const OPERATOR = env('OPERATOR_TOKEN');
const PLAN = env('PLAN_ID');
const SUMMARY = env('PLAN_SUMMARY');
const EXEC = env('EXECUTION_ID');
const REVISED = env('REVISED_PLAN_ID');
const SHOTS = env('SCREENSHOT_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(SHOTS, { recursive: true });

const problems = [];
const watch = (page, name) => {
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/401/.test(m.text())) problems.push(`${name}: console: ${m.text()}`); });
};
const shot = (page, file) => page.screenshot({ path: join(SHOTS, file), fullPage: true });
const step = (msg) => console.log(`[ui-test] ${msg}`);

async function signIn(page, token) {
  await page.goto(`${UI}/ui/`);
  await page.waitForSelector('#login');
  await page.fill('#token', token);
  await page.click('#login button[type=submit]');
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
let failed = false;
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const main = await context.newPage();
const watcher = await context.newPage();
watch(main, 'main'); watch(watcher, 'watcher');
try {
  step('a wrong token is refused');
  await signIn(main, 'not-a-token');
  await main.waitForSelector('#login');
  await main.locator('[role=alert]', { hasText: 'refused' }).waitFor();
  await shot(main, '01-login-refused.png');

  step('sign in; the dashboard lists the plan waiting for approval and goes live');
  await signIn(main, TOKEN);
  await main.waitForSelector('#pending table');
  await main.locator('#pending', { hasText: SUMMARY }).waitFor();
  await main.waitForSelector('#live.on', { timeout: 15000 });
  await shot(main, '02-dashboard.png');

  step('a second tab opens the execution, still waiting for approval');
  await signIn(watcher, TOKEN);
  await watcher.waitForSelector('#pending');
  await watcher.evaluate((id) => { location.hash = `#/executions/${id}`; }, EXEC);
  await watcher.waitForSelector('#exec-status [data-status="pending"]');
  await watcher.waitForSelector('#live.on', { timeout: 15000 });
  await watcher.evaluate(() => { window.__noReload = 'still-here'; });
  await shot(watcher, '03-execution-waiting.png');

  step('approve on the plan page');
  await main.evaluate((id) => { location.hash = `#/plans/${id}`; }, PLAN);
  await main.waitForSelector('#approval-state [data-status="pending"]');
  await main.waitForSelector('table');
  await shot(main, '04-plan-pending.png');
  await main.click('#approve');
  await main.waitForSelector('#approval-state [data-status="approved"]', { timeout: 15000 });
  await shot(main, '05-plan-approved.png');

  step('the execution tab turns to succeeded by itself, with the tool output');
  await watcher.waitForSelector('#exec-status [data-status="succeeded"]', { timeout: 90000 });
  const marker = await watcher.evaluate(() => window.__noReload);
  if (marker !== 'still-here') throw new Error('the execution page was reloaded instead of updated live');
  await watcher.locator('#logs', { hasText: 'helm ok' }).waitFor({ timeout: 15000 });
  const timeline = await watcher.textContent('.timeline');
  if (!timeline.includes('succeeded')) throw new Error(`timeline shows no succeeded step: ${timeline}`);
  step('the analysis chart shows three passing samples against the threshold');
  // A horizontal line has no height, so Playwright never calls it visible: attached is enough.
  await watcher.waitForSelector('#verification svg.analysis-chart line.threshold', { state: 'attached' });
  const samples = await watcher.locator('#verification svg.analysis-chart circle.sample[data-verdict="passed"]').count();
  if (samples !== 3) throw new Error(`expected 3 passing samples on the chart, saw ${samples}`);
  await watcher.locator('#verification .analysis[data-verdict="passed"]').waitFor();
  await shot(watcher, '06-execution-succeeded.png');

  step('audit log: the approval is there and the chain verifies');
  await main.evaluate(() => { location.hash = '#/audit'; });
  await main.waitForSelector('#chain [data-status="ok"]', { timeout: 15000 });
  await main.locator('main table', { hasText: 'approval' }).waitFor();
  // Pages follow cursors: 10 rows, then "Load more" appends the next page after the last row.
  const chainText = await main.textContent('#chain');
  const total = Number((chainText.match(/(\d+) events verified/) || [])[1] || 0);
  await main.selectOption('#audit-page-size', '10');
  if (total <= 10) throw new Error(`the flow left only ${total} audit events ("${chainText}"): "Load more" needs more than 10`);
  await main.locator('main h2', { hasText: /^Events \(10/ }).waitFor({ timeout: 10000 }).catch(async (err) => {
    throw new Error(`${err.message}; heading: ${await main.textContent('main section h2:last-of-type')}`);
  });
  await main.waitForSelector('main button.more');
  const firstPage = await main.locator('main table tbody tr').count();
  if (firstPage !== 10) throw new Error(`expected a page of 10 audit rows, got ${firstPage}`);
  const firstSeen = await main.locator('main table tbody').textContent();
  await main.click('main button.more');
  await main.locator('main table tbody tr').nth(10).waitFor();
  const afterMore = await main.locator('main table tbody tr').count();
  if (afterMore <= 10 || afterMore > 20) throw new Error(`expected 11..20 rows after "Load more", got ${afterMore}`);
  const allText = await main.locator('main table tbody').textContent();
  if (!allText.startsWith(firstSeen)) throw new Error('"Load more" did not keep the first page in place');
  const [download] = await Promise.all([main.waitForEvent('download'), main.click('#export-csv')]);
  if (!download.suggestedFilename().endsWith('.csv')) throw new Error('CSV export did not download');
  await shot(main, '07-audit.png');

  step('policy playground evaluates an input');
  await main.evaluate(() => { location.hash = '#/policies'; });
  await main.waitForSelector('details');
  await main.click('#evaluate');
  await main.locator('#policy-result', { hasText: 'require_approval' }).waitFor();
  await shot(main, '08-policies.png');
  step('policy page what-if: a draft plan against a candidate freezing production writes');
  await main.fill('#whatif-text', 'package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains "prod_frozen" if {\n\tis_write\n\tprod_env\n}\n');
  await main.click('#whatif-run');
  await main.locator('#whatif-result', { hasText: 'deny_reasons "prod_frozen" (candidate.rego:5)' }).waitFor({ timeout: 15000 });
  await shot(main, '08b-policies-whatif.png');

  step('integrations show the database, Temporal and the tool router up');
  await main.evaluate(() => { location.hash = '#/integrations'; });
  await main.waitForSelector('main table');
  const deps = await main.textContent('main table');
  for (const name of ['PostgreSQL', 'Temporal', 'Tool router']) {
    if (!deps.includes(name)) throw new Error(`integrations lack ${name}: ${deps}`);
  }
  const down = await main.$$eval('main table [data-status="down"]', (els) => els.length);
  if (down !== 0) throw new Error(`${down} dependencies shown down: ${deps}`);
  await shot(main, '09-integrations.png');

  step('context graph of a service');
  await main.evaluate(() => { location.hash = '#/context?service=web'; });
  await main.waitForSelector('#graph .node', { timeout: 15000 });
  await shot(main, '10-context.png');

  step('library: playbooks, runbooks and the workflow catalogue; a workflow opens New plan on it');
  await main.evaluate(() => { location.hash = '#/library'; });
  await main.locator('#playbooks table', { hasText: 'HighLatency' }).waitFor();
  await main.waitForSelector('#runbooks');
  await main.locator('#workflows table', { hasText: 'helm_release' }).waitFor();
  await main.click('#playbooks table a');
  await main.locator('#library-document', { hasText: 'service_restart' }).waitFor();
  await main.evaluate(() => { location.hash = '#/library'; });
  await main.click('a.start-workflow[data-workflow="scale_service"]');
  await main.waitForSelector('#new-plan');
  await main.locator('#wf-replicas').waitFor();
  if (!(await main.isChecked('#mode-workflow'))) throw new Error('New plan did not open in workflow mode');
  if ((await main.inputValue('#new-workflow')) !== 'scale_service') throw new Error('New plan did not preselect the workflow');
  await shot(main, '10b-library.png');

  step('no demo banner: this router runs real CLIs');
  if (await main.isVisible('#demo-banner')) throw new Error('demo banner shown without demo mode');

  step('new plan: an intent is previewed (planned steps, risk, policy) and nothing is stored');
  const creator = await context.newPage();
  watch(creator, 'creator');
  await signIn(creator, OPERATOR);
  await creator.waitForSelector('#recent');
  await creator.waitForSelector('#recent-page-size');
  await creator.evaluate(() => { location.hash = '#/new'; });
  await creator.waitForSelector('#new-plan');
  await creator.fill('#new-intent', 'scale web to 4 from 2');
  await creator.fill('#new-namespace', 'web');
  await creator.selectOption('#new-environment', 'staging');
  await creator.click('#preview');
  await creator.locator('#new-plan-preview', { hasText: 'kubectl scale' }).waitFor();
  await creator.waitForSelector('#preview-decision [data-status="require_approval"]');
  if (await creator.isDisabled('#submit-plan')) throw new Error('a previewed plan cannot be submitted');
  await creator.fill('#new-intent', 'scale web to 5 from 2');
  if (!(await creator.isDisabled('#submit-plan'))) throw new Error('an edit after the preview did not ask for a new one');
  await shot(creator, '11-new-plan-intent.png');

  step('new plan: a workflow from the catalogue with its generated form, previewed, then started');
  await creator.click('#mode-workflow');
  await creator.selectOption('#new-workflow', 'helm_release');
  await creator.fill('#wf-release', 'web');
  await creator.fill('#wf-chart', 'charts/web');
  await creator.fill('#wf-namespace', 'web');
  await creator.fill('#new-summary', 'Release web from the form');
  await creator.click('#preview');
  await creator.locator('#new-plan-preview', { hasText: 'helm upgrade' }).waitFor();
  await creator.waitForSelector('#preview-approval [data-status="pending"]');
  await shot(creator, '12-new-plan-preview.png');
  await creator.click('#submit-plan');
  await creator.waitForSelector('#approval-state [data-status="pending"]', { timeout: 15000 });
  const formPlan = (await creator.evaluate(() => location.hash)).replace('#/plans/', '');
  if (!/^[0-9a-f-]{36}$/.test(formPlan)) throw new Error(`not on a plan page after submitting: ${formPlan}`);
  await creator.locator('main', { hasText: 'Release web from the form' }).waitFor();

  step('the approver approves it; the operator executes it and follows it to the end');
  await main.evaluate((id) => { location.hash = `#/plans/${id}`; }, formPlan);
  await main.click('#approve');
  await main.waitForSelector('#approval-state [data-status="approved"]', { timeout: 15000 });
  await creator.waitForSelector('#execute', { timeout: 15000 });
  await creator.click('#execute');
  await creator.waitForSelector('#exec-status', { timeout: 15000 });
  await creator.waitForSelector('#exec-status [data-status="succeeded"]', { timeout: 90000 });
  const formExec = (await creator.evaluate(() => location.hash)).replace('#/executions/', '');
  await shot(creator, '13-form-plan-succeeded.png');
  await main.evaluate(() => { location.hash = '#/dashboard'; });
  await main.locator('#recent tr', { has: main.locator(`a[href="#/executions/${formExec}"]`) }).locator('[data-status="succeeded"]').waitFor({ timeout: 15000 });
  await shot(main, '14-dashboard-recent.png');
  console.log(`[ui-test] form plan ${formPlan} execution ${formExec}`);

  step('a revised plan shows what its revision changed, and its revisions');
  await main.evaluate((id) => { location.hash = `#/plans/${id}`; }, REVISED);
  await main.locator('#diff-summary', { hasText: '1 step changed' }).waitFor({ timeout: 15000 });
  const diffText = await main.textContent('#diff-text');
  if (!diffText.includes('input.replicas: 3 -> 4')) throw new Error(`diff text: ${diffText}`);
  await main.locator('#plan-changes', { hasText: 'browser test' }).waitFor();
  await shot(main, '15-plan-revision-changes.png');

  step('the plan page draws the blast radius: the changed service highlighted, edges by request rate');
  await main.locator('#blast-headline', { hasText: '3 services' }).waitFor({ timeout: 15000 });
  const targetsDrawn = await main.locator('#blast-graph g.node.target').count();
  if (targetsDrawn !== 1) throw new Error(`expected one highlighted target, saw ${targetsDrawn}`);
  const targetName = await main.getAttribute('#blast-graph g.node.target', 'data-service');
  if (targetName !== 'web') throw new Error(`highlighted ${targetName}`);
  const widthOf = (caller) => main.getAttribute(`#blast-graph line.edge[data-caller="${caller}"]`, 'stroke-width');
  const [narrow, wide] = [Number(await widthOf('api')), Number(await widthOf('ingress'))];
  if (!(wide > narrow)) throw new Error(`edge widths do not follow rates: api->web ${narrow}, ingress->api ${wide}`);
  await main.locator('#blast-radius td', { hasText: 'ingress' }).waitFor();
  await shot(main, '15b-plan-blast-radius.png');

  step('policy what-if on the plan page: a candidate freezing writes shows the step and the rule');
  await main.fill('#whatif-text', 'package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains "writes_frozen" if {\n\tis_write\n}\n');
  await main.click('#whatif-run');
  await main.locator('#whatif-result', { hasText: 'deny_reasons "writes_frozen" (candidate.rego:5)' }).waitFor({ timeout: 15000 });
  const changedRows = await main.locator('#whatif-result strong.changed').count();
  if (changedRows < 2) throw new Error(`expected the plan and its write step to change, saw ${changedRows}`);
  await shot(main, '16-plan-whatif.png');

  step('the operator replays the revised plan under a candidate that freezes writes: the report shows the change');
  await creator.evaluate(() => { location.hash = '#/replays'; });
  await creator.selectOption('#replay-source', 'plan');
  await creator.fill('#replay-value', REVISED);
  await creator.fill('#replay-candidate', 'package policy.assistant.v1\n\nimport rego.v1\n\ndeny_reasons contains "writes_frozen" if {\n\tis_write\n}\n');
  await creator.click('#replay-run');
  await creator.locator('#replay-hash', { hasText: 'sha256:' }).waitFor({ timeout: 15000 });
  await creator.locator('#replay-progress', { hasText: '1 of 1 incidents replayed, 1 changed' }).waitFor();
  const changedReplayRows = await creator.locator('#replay-incidents tr.changed').count();
  if (changedReplayRows !== 1) throw new Error(`expected one changed incident, saw ${changedReplayRows}`);
  await creator.locator('#replay-incidents tr.changed [data-status="deny"]').waitFor();
  await creator.locator('#replay-incidents tr.changed td', { hasText: /^decision, reasons, approvals_required$/ }).waitFor();
  await shot(creator, '17-replay-report.png');
  await creator.evaluate(() => { location.hash = '#/replays'; });
  await creator.locator('#replay-list td', { hasText: 'plan' }).waitFor({ timeout: 15000 });

  if (problems.length) throw new Error(`browser reported problems:\n${problems.join('\n')}`);
  step('all checks passed');
} catch (err) {
  failed = true;
  console.error(`[ui-test] FAILED: ${err.stack || err}`);
  if (problems.length) console.error(problems.join('\n'));
  await shot(main, '99-failure-main.png').catch(() => {});
  await shot(watcher, '99-failure-watcher.png').catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
