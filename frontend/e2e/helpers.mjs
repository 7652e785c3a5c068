/** Shared helpers of the end-to-end tests: browser, sign-in, screenshots, CSP violations. */
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { after, afterEach } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const BASE_URL = (process.env.LOOM_E2E_BASE_URL ?? '').replace(/\/+$/, '') || null;
export const CHROMIUM = process.env.LOOM_E2E_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-quic',
  '--no-first-run',
  '--disable-sync',
];

export async function launch() {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Content-Security-Policy violations Chromium reported in the console of any page of any test
 * ("Refused to load/execute/apply ... because it violates the following Content Security
 * Policy directive"). Every test of every file fails when one was reported during it (checked
 * after each test, and once more after the file for late reports).
 */
const cspViolations = [];
const CSP_MESSAGE = /Content[ -]Security[ -]Policy/i;

function checkCsp() {
  if (cspViolations.length === 0) return;
  const found = cspViolations.splice(0);
  throw new Error(`the page reported ${found.length} CSP violation(s):\n${found.join('\n')}`);
}
afterEach(checkCsp);
after(checkCsp);

/** A fresh browser context (its own cookies = its own user) with console errors collected. */
export async function newPage(browser, { viewport = { width: 1280, height: 860 }, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ baseURL: BASE_URL, viewport, colorScheme });
  context.setDefaultTimeout(15_000);
  // Every page of the context, a second tab included.
  context.on('console', (msg) => {
    if (CSP_MESSAGE.test(msg.text())) cspViolations.push(`${msg.page()?.url() ?? '?'}: ${msg.text()}`);
  });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  return { context, page, errors };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: false });
}

export function uniqueName(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Sign in through the "Who are you?" screen (cookie mode). */
export async function signIn(page, name) {
  await page.goto('/');
  await page.getByTestId('signin-name').fill(name);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('user-name').filter({ hasText: name }).waitFor();
}

export async function authMode() {
  const res = await fetch(`${BASE_URL}/auth/mode`);
  if (!res.ok) return 'cookie';
  const body = await res.json();
  return body.mode;
}

/**
 * Record every text the streaming AI message shows (a MutationObserver in the page), so a test
 * can prove tokens appeared before the reply was complete whatever the timing.
 */
export async function recordStreamingText(page) {
  await page.evaluate(() => {
    const w = window;
    w.__loomSnapshots = [];
    w.__loomObserver?.disconnect();
    const take = () => {
      const el = document.querySelector('[data-testid="message"][data-streaming="true"] [data-testid="message-content"]');
      if (!el) return;
      const text = (el.textContent ?? '').trim();
      const list = w.__loomSnapshots;
      if (text && list[list.length - 1] !== text) list.push(text);
    };
    w.__loomObserver = new MutationObserver(take);
    w.__loomObserver.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  return async () =>
    page.evaluate(() => {
      window.__loomObserver?.disconnect();
      return window.__loomSnapshots ?? [];
    });
}

/** Wait until no run is streaming (the Stop button is gone and Send is back). */
export async function waitForRunEnd(page, timeout = 60_000) {
  await page.getByTestId('stop-button').waitFor({ state: 'detached', timeout });
  await page.getByTestId('send-button').waitFor({ timeout });
}

export async function sendMessage(page, text) {
  const input = page.getByTestId('composer-input');
  await input.fill(text);
  await input.press('Enter');
}

const require = createRequire(import.meta.url);
let axeSource = null;

/** Accessibility violations (axe-core) of the page as it is now, at the given impact levels. */
export async function axeViolations(page, impacts = ['serious', 'critical']) {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  // Evaluated through the DevTools protocol: an inline <script> tag would be (rightly) refused
  // by the page's CSP.
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => impacts.includes(v.impact))
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(' | ')})`);
}
