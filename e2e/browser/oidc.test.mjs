// SSO sign-in on the web UI through the mock identity provider of
// crates/gateway/tests/ui_oidc.rs. EXPECT=signed-in: the round trip ends on the dashboard with the
// ID token accepted by the API. EXPECT=nonce-refused: the provider returns a token for another
// nonce and the UI refuses it, staying on the sign-in page.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const UI = process.env.UI_URL;
const EXPECT = process.env.EXPECT;
const SHOTS = process.env.SCREENSHOT_DIR;
mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await (await browser.newContext()).newPage();
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
let failed = false;
try {
  await page.goto(`${UI}/ui/`);
  await page.locator('#sso').waitFor();
  await page.screenshot({ path: join(SHOTS, `${EXPECT}-1-login.png`) });
  await page.click('#sso');
  if (EXPECT === 'signed-in') {
    await page.locator('#pending').waitFor({ timeout: 20000 });
    await page.locator('#live.on').waitFor({ timeout: 15000 });
    const url = new URL(page.url());
    if (url.searchParams.has('code') || url.searchParams.has('state')) throw new Error(`code left in the URL: ${page.url()}`);
    await page.screenshot({ path: join(SHOTS, `${EXPECT}-2-dashboard.png`) });
  } else {
    await page.locator('[role=alert]', { hasText: 'nonce' }).waitFor({ timeout: 20000 });
    if (await page.locator('#pending').count()) throw new Error('signed in with a token for another nonce');
    await page.screenshot({ path: join(SHOTS, `${EXPECT}-2-refused.png`) });
  }
  if (problems.length) throw new Error(problems.join('\n'));
  console.log('[oidc-test] all checks passed');
} catch (err) {
  failed = true;
  console.error(`[oidc-test] FAILED: ${err.stack || err}`);
  await page.screenshot({ path: join(SHOTS, `${EXPECT}-99-failure.png`) }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
