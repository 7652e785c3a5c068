/**
 * Bearer-token sign-in (JWT / OIDC mode): pasting a token, taking an access token from the URL
 * fragment after an OIDC redirect (never an id_token), and signing out. Needs a server in jwt or oidc mode:
 *   LOOM_E2E_TOKEN_BASE_URL (default LOOM_E2E_BASE_URL) and LOOM_E2E_TOKEN, a token it accepts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launch, newPage, shot } from './helpers.mjs';

const BASE = (process.env.LOOM_E2E_TOKEN_BASE_URL ?? process.env.LOOM_E2E_BASE_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.LOOM_E2E_TOKEN ?? '';
let mode = null;
if (BASE && TOKEN) {
  try {
    mode = (await (await fetch(`${BASE}/auth/mode`)).json()).mode;
  } catch {
    mode = null;
  }
}
const skip = !BASE || !TOKEN
  ? 'set LOOM_E2E_TOKEN (and LOOM_E2E_TOKEN_BASE_URL) to test token sign-in'
  : mode === 'cookie' || !mode
    ? `the server at ${BASE} is not in a token mode`
    : false;

describe('token sign-in', { skip }, () => {
  let browser;
  before(async () => {
    browser = await launch();
  });
  after(async () => browser?.close());

  it('signs in with a pasted token, keeps it on reload, and signs out', { timeout: 60_000 }, async () => {
    const { context, page } = await newPage(browser);
    try {
      await page.goto(`${BASE}/`);
      await page.getByTestId('signin-token').fill(TOKEN);
      await shot(page, '20-token-sign-in');
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('sidebar').waitFor();
      await page.reload();
      await page.getByTestId('sidebar').waitFor();
      await page.getByTestId('sign-out').click();
      await page.getByTestId('signin-token').waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('loom.access_token')), null);
    } finally {
      await context.close();
    }
  });

  it('takes the token from #access_token after an OIDC redirect', { timeout: 60_000 }, async () => {
    const { context, page } = await newPage(browser);
    try {
      await page.goto(`${BASE}/#access_token=${encodeURIComponent(TOKEN)}&token_type=Bearer`);
      await page.getByTestId('sidebar').waitFor();
      assert.equal(new URL(page.url()).hash, '', 'the token is removed from the address bar');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('loom.access_token')), TOKEN);
    } finally {
      await context.close();
    }
  });

  it('never takes an id_token from the URL fragment (and clears it from the address bar)', { timeout: 60_000 }, async () => {
    const { context, page } = await newPage(browser);
    try {
      await page.goto(`${BASE}/#id_token=${encodeURIComponent(TOKEN)}`);
      await page.getByTestId('signin-token').waitFor();
      assert.equal(new URL(page.url()).hash, '', 'the id_token is removed from the address bar');
      assert.equal(await page.evaluate(() => sessionStorage.getItem('loom.access_token')), null);
    } finally {
      await context.close();
    }
  });

  it('rejects a bad token with a message', { timeout: 60_000 }, async () => {
    const { context, page } = await newPage(browser);
    try {
      await page.goto(`${BASE}/`);
      await page.getByTestId('signin-token').fill('not-a-token');
      await page.getByTestId('signin-submit').click();
      await page.getByTestId('signin-error').waitFor();
    } finally {
      await context.close();
    }
  });
});
