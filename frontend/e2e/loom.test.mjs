/**
 * End-to-end tests of the Loom UI against a running Loom (LOOM_E2E_BASE_URL), driven with
 * playwright-core and Debian's Chromium. Run with `npm run e2e`.
 * The scenarios run in order and share state (user A's assistant and thread).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fake } from './fake.mjs';
import {
  ARTIFACTS,
  BASE_URL,
  authMode,
  axeViolations,
  launch,
  newPage,
  recordStreamingText,
  sendMessage,
  shot,
  signIn,
  uniqueName,
  waitForRunEnd,
} from './helpers.mjs';

/** A REST call as a cookie-mode user (to set up or check what the UI did). */
async function apiAs(user, method, path, body) {
  const res = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: { cookie: `opengpts_user_id=${user}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const skip = BASE_URL ? false : 'LOOM_E2E_BASE_URL is not set (start Loom and point it there)';
const STEP = { timeout: 90_000 };

describe('Loom web UI', { skip }, () => {
  let browser;
  let mode;
  const userA = uniqueName('alice');
  const userB = uniqueName('bob');
  /** @type {{context: import('playwright-core').BrowserContext, page: import('playwright-core').Page, errors: string[]}} */
  let a;
  const state = { assistantId: null, threadId: null, firstReply: null, toolId: null, publicAssistantId: null };

  before(async () => {
    mode = await authMode();
    browser = await launch();
    a = await newPage(browser);
    await fake.reset();
  });

  after(async () => {
    await browser?.close();
    console.log(`# screenshots in ${ARTIFACTS}`);
  });

  it('signs in with a name (cookie mode)', STEP, async (t) => {
    if (mode !== 'cookie') return t.skip(`the server is in ${mode} mode`);
    const { page } = a;
    await page.goto('/');
    await page.getByTestId('signin-form').waitFor();
    await page.getByTestId('signin-name').fill(userA);
    await shot(page, '01-sign-in');
    await page.getByTestId('signin-submit').click();
    await page.getByTestId('user-name').filter({ hasText: userA }).waitFor();
    const cookies = await a.context.cookies();
    assert.ok(cookies.some((c) => c.name === 'opengpts_user_id' && c.value === userA), 'cookie set');
    await page.getByTestId('home').waitFor();
    await shot(page, '02-home');
  });

  it('creates an assistant through the form', STEP, async () => {
    const { page } = a;
    await page.getByTestId('new-assistant').click();
    await page.getByTestId('assistant-form').waitFor();
    await page.getByTestId('assistant-name').fill('E2E helper');
    // The form is generated from the config schema: the agent type and model are selects.
    await page.getByTestId('field-type').waitFor();
    await page.getByTestId('field-model').waitFor();
    await page.getByTestId('field-system_message').fill('You are a terse test assistant.');
    // The raw JSON view follows the form.
    await page.locator('details.raw-json > summary').click();
    const json = JSON.parse(await page.getByTestId('config-json').inputValue());
    assert.equal(json.configurable.system_message, 'You are a terse test assistant.');
    assert.equal(json.configurable.type, 'agent');
    await shot(page, '03-assistant-form');
    await page.getByTestId('save-assistant').click();
    await page.waitForURL(/\/a\/[^/]+$/);
    state.assistantId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);
    await page.locator(`[data-testid="assistant-item"][data-assistant-id="${state.assistantId}"]`).waitFor();
    await page.getByTestId('composer-input').waitFor();
  });

  it('streams a reply: partial text shows before the reply completes', STEP, async () => {
    const { page } = a;
    const words = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    await fake.reply(`Streaming check: ${words}. Done.`, 50);
    const snapshots = await recordStreamingText(page);
    await sendMessage(page, 'Hello from the e2e test');
    // The thread exists as soon as the first message is sent.
    await page.waitForURL(/\/t\/[^/]+$/);
    state.threadId = decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);
    // A screenshot while tokens arrive.
    await page.locator('[data-testid="message"][data-streaming="true"] [data-testid="message-content"]').filter({ hasText: /\S/ }).first().waitFor({ timeout: 30_000 }).then(
      () => shot(page, '04-streaming'),
      () => undefined,
    );
    await waitForRunEnd(page);
    const seen = await snapshots();
    const aiMessages = page.locator('[data-testid="message"][data-type="ai"]');
    await aiMessages.last().waitFor();
    const final = (await aiMessages.last().getByTestId('message-content').textContent())?.trim() ?? '';
    assert.ok(final.length > 0, 'the reply has text');
    const partial = seen.filter((s) => s.length > 0 && s.length < final.length);
    assert.ok(
      partial.length >= 1,
      `expected partial text before the reply completed; snapshots: ${JSON.stringify(seen.slice(0, 5))}`,
    );
    state.firstReply = final;
    await page.locator('[data-testid="message"][data-type="human"]').filter({ hasText: 'Hello from the e2e test' }).waitFor();
    await page.locator(`[data-testid="thread-item"][data-thread-id="${state.threadId}"]`).waitFor();
    await shot(page, '05-reply');
  });

  it('shows the history after a reload', STEP, async () => {
    const { page } = a;
    await page.reload();
    await page.locator('[data-testid="message"][data-type="human"]').filter({ hasText: 'Hello from the e2e test' }).waitFor();
    const ai = page.locator('[data-testid="message"][data-type="ai"]').last();
    await ai.waitFor();
    const text = (await ai.getByTestId('message-content').textContent())?.trim() ?? '';
    assert.equal(text, state.firstReply);
    assert.match(new URL(page.url()).pathname, new RegExp(`^/t/${state.threadId}$`));
  });

  it('has no serious accessibility problems (axe) on the chat and the form', STEP, async () => {
    const { page } = a;
    assert.deepEqual(await axeViolations(page), [], 'chat page');
    await page.goto(`/a/${state.assistantId}/edit`);
    await page.getByTestId('assistant-form').waitFor();
    assert.deepEqual(await axeViolations(page), [], 'assistant form');
    await page.goto(`/t/${state.threadId}`);
    await page.getByTestId('composer-input').waitFor();
  });

  it('stops a reply with the Stop button', STEP, async (t) => {
    if (!fake.available) return t.skip('LOOM_E2E_FAKE_URL is not set: cannot script a slow reply');
    const { page } = a;
    const words = Array.from({ length: 300 }, (_, i) => `slow${i}`).join(' ');
    await fake.reply(`${words} THE-END`, 100);
    await sendMessage(page, 'Tell me a very long story');
    const streamingText = page.locator('[data-testid="message"][data-streaming="true"] [data-testid="message-content"]');
    await streamingText.filter({ hasText: /slow\d/ }).waitFor({ timeout: 30_000 });
    await page.getByTestId('stop-button').click();
    await page.getByTestId('send-button').waitFor({ timeout: 15_000 });
    const last = page.locator('[data-testid="message"][data-type="ai"]').last();
    const before = (await last.textContent()) ?? '';
    assert.doesNotMatch(before, /THE-END/, 'the reply was cut short');
    await page.waitForTimeout(1500);
    const afterWait = (await page.locator('[data-testid="message"][data-type="ai"]').last().textContent()) ?? '';
    assert.doesNotMatch(afterWait, /THE-END/, 'nothing more arrived after Stop');
    await shot(page, '05b-stopped');
  });

  it('uploads a file into the thread with progress', STEP, async () => {
    const { page } = a;
    const file = join(tmpdir(), `${uniqueName('loom-e2e')}.txt`);
    writeFileSync(file, 'Loom e2e upload.\nThe secret word is periwinkle.\n'.repeat(50));
    await page.getByTestId('upload-input').setInputFiles(file);
    const status = page.getByTestId('upload-status');
    await status.waitFor();
    await page.locator('[data-testid="upload-status"]:not([data-status="uploading"])').waitFor({ timeout: 60_000 });
    await shot(page, '06-upload');
    const result = await status.getAttribute('data-status');
    assert.equal(result, 'done', `upload failed: ${await status.textContent()}`);
  });

  it('pauses before a tool call and continues once approved', STEP, async (t) => {
    if (!fake.available) return t.skip('LOOM_E2E_FAKE_URL is not set: cannot script a tool call');
    const { page } = a;
    await page.getByTestId('new-assistant').click();
    await page.getByTestId('assistant-name').fill('E2E careful agent');
    const enabledTools = page.locator('[data-testid^="tool-"]:not([disabled])');
    const count = await enabledTools.count();
    if (count === 0) return t.skip('no tool is available on this server');
    const toolBox = enabledTools.first();
    const toolId = (await toolBox.getAttribute('data-testid')).slice('tool-'.length);
    state.toolId = toolId;
    await toolBox.check();
    await page.getByTestId('field-interrupt_before_action').check();
    await page.getByTestId('save-assistant').click();
    await page.waitForURL(/\/a\/[^/]+$/);

    await fake.toolCallThenReply(toolId, { query: 'Loom e2e' }, 'All done after the tool.');
    await sendMessage(page, 'Please use your tool.');
    const approval = page.getByTestId('approval');
    await approval.waitFor({ timeout: 60_000 });
    await page.getByTestId('approval-call').first().waitFor();
    await shot(page, '07-approval');
    await page.getByTestId('approve-button').click();
    await page.getByTestId('tool-result').first().waitFor({ timeout: 60_000 });
    await waitForRunEnd(page);
    await approval.waitFor({ state: 'detached' });
    await page.locator('[data-testid="message"][data-type="ai"]').filter({ hasText: 'All done after the tool.' }).waitFor();
    await shot(page, '08-approved');
  });

  it('edits the arguments of a tool call, and rejects another', STEP, async (t) => {
    if (!fake.available || !state.toolId) return t.skip('needs the approval scenario (fake LLM and a tool)');
    const { page } = a;
    await fake.toolCallThenReply(state.toolId, { query: 'original' }, 'Edited run done.');
    await sendMessage(page, 'Use the tool again.');
    await page.getByTestId('approval').waitFor({ timeout: 60_000 });
    await page.getByTestId('edit-args-button').click();
    const editor = page.getByTestId('args-editor').first();
    await editor.fill('{"query": "edited by e2e"}');
    await shot(page, '08b-edit-arguments');
    await page.getByTestId('save-args-button').click();
    await page.locator('[data-testid="message"][data-type="ai"]').filter({ hasText: 'Edited run done.' }).waitFor({ timeout: 60_000 });
    await waitForRunEnd(page);
    const calls = page.getByTestId('tool-call');
    const lastCall = (await calls.last().textContent()) ?? '';
    assert.match(lastCall, /edited by e2e/, 'the edited arguments were used');

    await fake.toolCallThenReply(state.toolId, { query: 'unwanted' }, 'Fine, no tool then.');
    await sendMessage(page, 'And once more.');
    await page.getByTestId('approval').waitFor({ timeout: 60_000 });
    await page.getByTestId('reject-button').click();
    await page.locator('[data-testid="message"][data-type="ai"]').filter({ hasText: 'Fine, no tool then.' }).waitFor({ timeout: 60_000 });
    await waitForRunEnd(page);
    const results = page.getByTestId('tool-result');
    assert.match((await results.last().textContent()) ?? '', /The user rejected this tool call\./);
    assert.equal(await page.getByTestId('approval').count(), 0);
  });

  it('shows a stream error in place and retries', STEP, async (t) => {
    if (!fake.canFail) return t.skip('the fake LLM cannot be told to fail (set LOOM_E2E_FAKE_ERRORS=1 if it can)');
    const { page } = a;
    await fake.enqueue([
      { error: { status_code: 502, message: 'Upstream exploded' } },
      { content: 'Recovered after retry.', chunk_delay_ms: 10 },
    ]);
    await sendMessage(page, 'This will fail once');
    const error = page.getByTestId('stream-error');
    await error.waitFor({ timeout: 60_000 });
    assert.match((await error.textContent()) ?? '', /\S/);
    await shot(page, '08c-stream-error');
    await page.getByTestId('retry-button').click();
    await page.locator('[data-testid="message"][data-type="ai"]').filter({ hasText: 'Recovered after retry.' }).waitFor({ timeout: 60_000 });
    await waitForRunEnd(page);
    assert.equal(await error.count(), 0);
    const sent = page.locator('[data-testid="message"][data-type="human"]').filter({ hasText: 'This will fail once' });
    assert.equal(await sent.count(), 1, 'the retried message is not duplicated');
  });

  it('renames and deletes a chat from the sidebar', STEP, async () => {
    const { page } = a;
    const created = await apiAs(userA, 'POST', '/threads', { name: 'To be renamed', assistant_id: state.assistantId });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const id = created.body.thread_id;
    await page.goto('/');
    const item = page.locator(`[data-testid="thread-item"][data-thread-id="${id}"]`);
    await item.waitFor();
    await item.getByTestId('rename-thread').click();
    await item.getByTestId('rename-input').fill('Renamed by e2e');
    await item.getByTestId('rename-input').press('Enter');
    await item.filter({ hasText: 'Renamed by e2e' }).waitFor();
    assert.equal((await apiAs(userA, 'GET', `/threads/${id}`)).body.name, 'Renamed by e2e');
    await item.getByTestId('delete-thread').click();
    await item.getByTestId('confirm-delete').click();
    await item.waitFor({ state: 'detached' });
    assert.equal((await apiAs(userA, 'GET', `/threads/${id}`)).status, 404);
  });

  it("reads an OpenGPTs-style config and saves it in plain keys", STEP, async () => {
    const { page } = a;
    const schema = (await apiAs(userA, 'GET', '/runs/config_schema')).body;
    const props = schema.properties.configurable.properties;
    const model = props.model.default ?? props.model.enum[0];
    const tool = (props.tools['x-tools'] ?? []).find((x) => x.available);
    const legacy = {
      configurable: {
        type: 'agent',
        'type==agent/agent_type': model,
        'type==agent/system_message': 'Legacy instructions',
        'type==agent/tools': tool ? [tool.name] : [],
      },
    };
    const created = await apiAs(userA, 'POST', '/assistants', { name: 'Legacy bot', config: legacy, public: false });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const id = created.body.assistant_id;
    // The home page names its model, read where the schema's x-model-fields says.
    await page.goto('/');
    await page.getByTestId('assistant-card').filter({ hasText: 'Legacy bot' }).filter({ hasText: `agent · ${model}` }).waitFor();
    await page.goto(`/a/${id}/edit`);
    await page.getByTestId('assistant-form').waitFor();
    assert.equal(await page.getByTestId('field-system_message').inputValue(), 'Legacy instructions');
    assert.equal(await page.getByTestId('field-model').inputValue(), model);
    if (tool) assert.equal(await page.getByTestId(`tool-${tool.id}`).isChecked(), true);
    await page.getByTestId('field-system_message').fill('Rewritten instructions');
    await page.getByTestId('assistant-public').check();
    await page.getByTestId('save-assistant').click();
    await page.waitForURL(new RegExp(`/a/${id}$`));
    const saved = (await apiAs(userA, 'GET', `/assistants/${id}`)).body;
    const conf = saved.config.configurable;
    assert.equal(conf.system_message, 'Rewritten instructions');
    assert.equal(conf.model, model);
    assert.deepEqual(Object.keys(conf).filter((k) => k.startsWith('type==')), []);
    if (tool) assert.deepEqual(conf.tools.map((x) => x.type), [tool.id]);
    assert.equal(saved.public, true);
    state.publicAssistantId = id;
  });

  it('a second user sees none of the first user\'s threads', STEP, async (t) => {
    if (mode !== 'cookie') return t.skip(`the server is in ${mode} mode`);
    assert.ok(state.threadId, 'user A has a thread');
    const b = await newPage(browser);
    try {
      await signIn(b.page, userB);
      await b.page.getByTestId('sidebar').waitFor();
      // The list finished loading: either threads or the empty message.
      await b.page.locator('[data-testid="thread-list"], #nav-chats ~ p').first().waitFor();
      assert.equal(await b.page.locator(`[data-thread-id="${state.threadId}"]`).count(), 0);
      assert.equal(await b.page.getByTestId('thread-item').count(), 0);
      await shot(b.page, '09-second-user');
      // Opening A's thread by URL does not reveal it.
      await b.page.goto(`/t/${state.threadId}`);
      await b.page.getByTestId('chat-error').waitFor();
      assert.equal(
        await b.page.locator('[data-testid="message"]').filter({ hasText: 'Hello from the e2e test' }).count(),
        0,
      );
      // A's public assistant: listed for B, and its share link opens a new chat with it.
      if (state.publicAssistantId) {
        await b.page.goto(`/a/${state.publicAssistantId}`);
        await b.page.getByTestId('chat-assistant').filter({ hasText: 'Legacy bot' }).waitFor();
        await b.page.locator(`[data-testid="public-assistant-list"] [data-assistant-id="${state.publicAssistantId}"]`).waitFor();
        assert.equal(await b.page.locator('a', { hasText: 'Edit assistant' }).count(), 0, 'B cannot edit it');
        await fake.reply('Hello B, from a shared assistant.', 10);
        await sendMessage(b.page, 'Hi from B');
        await b.page.waitForURL(/\/t\/[^/]+$/);
        await waitForRunEnd(b.page);
        await b.page.locator('[data-testid="message"][data-type="ai"]').last().waitFor();
        await shot(b.page, '09b-shared-assistant');
      }
    } finally {
      await b.context.close();
    }
  });

  it('works on a 375px wide screen in the dark theme', STEP, async (t) => {
    if (mode !== 'cookie') return t.skip(`the server is in ${mode} mode`);
    const m = await newPage(browser, { viewport: { width: 375, height: 740 }, colorScheme: 'dark' });
    try {
      await m.context.addCookies([{ name: 'opengpts_user_id', value: userA, url: BASE_URL }]);
      await m.page.goto(`/t/${state.threadId}`);
      await m.page.locator('[data-testid="message"][data-type="human"]').first().waitFor();
      const sidebarVisible = await m.page.getByTestId('sidebar').isVisible();
      assert.equal(sidebarVisible, false, 'the sidebar is collapsed on a phone');
      const overflow = await m.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
      assert.equal(overflow, false, 'no horizontal scrolling');
      await shot(m.page, '10-mobile-dark');
      await m.page.getByTestId('menu-toggle').click();
      await m.page.getByTestId('sidebar').waitFor({ state: 'visible' });
      await m.page.waitForTimeout(400); // the drawer slides in
      await shot(m.page, '11-mobile-menu');
    } finally {
      await m.context.close();
    }
  });

  it('logged no errors in the page', () => {
    const relevant = a.errors.filter((e) => !/Failed to load resource: the server responded with a status of 40[14]/.test(e));
    assert.deepEqual(relevant, []);
  });
});
