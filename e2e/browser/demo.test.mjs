// The quick start's first run, seen in a browser: with `./scripts/dev-up.sh --demo` up, sign in,
// see the demo banner, keep the dashboard open, run the first plan that dev-up wrote
// (FIRST_PLAN, a shell script) and watch its execution appear in "Recent activity" as succeeded
// without reloading; its execution page marks the tool calls "demo".
//
// Started by scripts/demo-check.sh: UI_URL, TOKEN, FIRST_PLAN, FIRST_PLAN_OUTPUT, SCREENSHOT_DIR.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const UI = env('UI_URL');
const SHOTS = env('SCREENSHOT_DIR');
mkdirSync(SHOTS, { recursive: true });
const step = (msg) => console.log(`[demo-test] ${msg}`);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
let failed = false;
try {
  step('sign in: the demo banner names the fakes');
  await page.goto(`${UI}/ui/`);
  await page.fill('#token', env('TOKEN'));
  await page.click('#login button[type=submit]');
  await page.locator('#demo-banner', { hasText: 'recording fakes' }).waitFor({ timeout: 15000 });
  await page.waitForSelector('#recent');
  await page.waitForSelector('#live.on', { timeout: 15000 });
  await page.evaluate(() => { window.__noReload = 'still-here'; });

  step('run the first plan while the dashboard is open');
  const run = spawnSync('bash', [env('FIRST_PLAN')], { encoding: 'utf8', timeout: 180000 });
  writeFileSync(env('FIRST_PLAN_OUTPUT'), `${run.stdout}\n--- stderr ---\n${run.stderr}`);
  if (run.status !== 0) throw new Error(`the first plan failed (exit ${run.status}):\n${run.stdout}\n${run.stderr}`);
  const exec = (run.stdout.match(/execution_id\s+([0-9a-f-]{36})/) || [])[1];
  if (!exec) throw new Error(`no execution id in the first plan's output:\n${run.stdout}`);

  step(`execution ${exec} shows up in Recent activity as succeeded, live`);
  await page.locator('#recent tr', { has: page.locator(`a[href="#/executions/${exec}"]`) }).locator('[data-status="succeeded"]').waitFor({ timeout: 30000 });
  if (await page.evaluate(() => window.__noReload) !== 'still-here') throw new Error('the dashboard reloaded instead of updating live');
  await page.screenshot({ path: join(SHOTS, 'demo-01-dashboard.png'), fullPage: true });

  step('its execution page marks the calls demo and shows the verification');
  await page.evaluate((id) => { location.hash = `#/executions/${id}`; }, exec);
  await page.waitForSelector('#exec-status [data-status="succeeded"]');
  const demoCalls = await page.locator('.timeline .badge.demo').count();
  if (demoCalls === 0) throw new Error('no tool call marked demo');
  await page.screenshot({ path: join(SHOTS, 'demo-02-execution.png'), fullPage: true });
  if (problems.length) throw new Error(problems.join('\n'));
  step('demo UI checks passed');
} catch (err) {
  failed = true;
  console.error(`[demo-test] FAILED: ${err.stack || err}`);
  await page.screenshot({ path: join(SHOTS, 'demo-99-failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
