#!/usr/bin/env node
/**
 * Runs the end-to-end tests with node:test.
 *   npm run e2e                  against LOOM_E2E_BASE_URL (and LOOM_E2E_FAKE_URL if set)
 *   npm run e2e -- --mock        against the in-memory mock API (e2e/mock-server.mjs), which
 *                                serves frontend/dist: run `npm run build` first
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(here)
  .filter((f) => f.endsWith('.test.mjs'))
  .sort()
  .map((f) => join(here, f));

const env = { ...process.env };
let mock = null;
let tokenMock = null;
if (process.argv.includes('--mock')) {
  if (!existsSync(join(here, '..', 'dist', 'index.html'))) {
    console.error('e2e --mock serves frontend/dist: run `npm run build` first.');
    process.exit(2);
  }
  const { startMockServer } = await import('./mock-server.mjs');
  mock = await startMockServer(0);
  env.LOOM_E2E_BASE_URL = mock.url;
  env.LOOM_E2E_FAKE_URL = `${mock.url}/__fake`;
  env.LOOM_E2E_MOCK = '1';
  // A second mock in token mode, for token.test.mjs (its tokens are not verified).
  tokenMock = await startMockServer(0, '127.0.0.1', { auth: 'jwt' });
  env.LOOM_E2E_TOKEN_BASE_URL = tokenMock.url;
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  env.LOOM_E2E_TOKEN = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'token-user', exp: 4102444800 })}.sig`;
  console.log(`# mock Loom API at ${mock.url}`);
} else if (!env.LOOM_E2E_BASE_URL) {
  console.log('# LOOM_E2E_BASE_URL is not set: the end-to-end tests will be skipped.');
}
if (!existsSync(env.LOOM_E2E_CHROMIUM ?? '/usr/bin/chromium')) {
  console.error('Chromium not found at /usr/bin/chromium (apt-get install -y chromium), or set LOOM_E2E_CHROMIUM.');
  process.exit(2);
}

const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...files], { env, stdio: 'inherit' });
child.on('exit', (code, signal) => {
  for (const m of [mock, tokenMock]) {
    m?.server.close();
    m?.server.closeAllConnections?.();
  }
  process.exit(code ?? (signal ? 1 : 0));
});
