/**
 * An in-memory stand-in for the Loom API, for developing and checking the UI without the
 * Python backend (`npm run e2e:mock`, or `node e2e/mock-server.mjs` then `npm run dev`).
 *
 * It implements the API as the UI expects it (cookie auth, assistants, threads, state,
 * compact SSE runs with approval, ingest) plus the fake-LLM control endpoint the e2e tests
 * use (see e2e/fake.mjs): POST /__fake/reset, POST /__fake/responses.
 * It is a development tool, not a reference: the real server is the truth.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = resolve(fileURLToPath(new URL('../dist', import.meta.url)));
const COOKIE = 'opengpts_user_id';

const TOOLS = [
  { id: 'wikipedia', name: 'Wikipedia', description: 'Look things up on Wikipedia.', available: true, unavailable_reason: null, config_schema: { type: 'object', properties: {} } },
  { id: 'ddg_search', name: 'DuckDuckGo Search', description: 'Search the web.', available: false, unavailable_reason: 'No internet access on this server.', config_schema: { type: 'object', properties: {} } },
  { id: 'retrieval', name: 'Retrieval', description: 'Search the files added to this assistant or chat.', available: true, unavailable_reason: null, config_schema: { type: 'object', properties: {} } },
];

const SCHEMA = {
  type: 'object',
  properties: {
    configurable: {
      type: 'object',
      properties: {
        type: {
          title: 'Agent type', type: 'string', enum: ['agent', 'chatbot', 'chat_retrieval'], default: 'agent',
          'x-enum-labels': { agent: 'Agent (tools)', chatbot: 'Chatbot', chat_retrieval: 'Chat with files (RAG)' },
          'x-enum-descriptions': { agent: 'Can call tools.', chatbot: 'Just talks.', chat_retrieval: 'Answers from your files.' },
        },
        model: {
          title: 'Model', type: 'string', enum: ['gpt-4o-mini', 'gpt-4o'], default: 'gpt-4o-mini',
          'x-enum-labels': { 'gpt-4o-mini': 'GPT-4o mini', 'gpt-4o': 'GPT-4o' },
          'x-model-fields': {
            agent: ['agent_type', 'llm_type', 'model'],
            chatbot: ['llm_type', 'agent_type', 'model'],
            chat_retrieval: ['llm_type', 'agent_type', 'model'],
          },
        },
        system_message: { title: 'Instructions', type: 'string', default: 'You are a helpful assistant.', 'x-widget': 'textarea' },
        tools: {
          title: 'Tools', type: 'array', default: [], 'x-applies-to': ['agent'], 'x-tools': TOOLS,
          items: { type: 'object', properties: { type: { type: 'string', enum: TOOLS.map((t) => t.id) }, config: { type: 'object' } }, required: ['type'] },
        },
        interrupt_before_action: { title: 'Ask before using tools', type: 'boolean', default: false, 'x-applies-to': ['agent'] },
        retrieval_description: { title: 'What the files are about', type: 'string', 'x-applies-to': ['agent', 'chat_retrieval'] },
      },
    },
  },
};

const db = { assistants: new Map(), threads: new Map(), runs: new Map() };
/** Scripted model responses (FIFO). */
let script = [];

const now = () => new Date().toISOString();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}
const fail = (res, status, detail) => send(res, status, { detail });

/** auth is "cookie" or "jwt"; in jwt mode any token whose payload has a `sub` is accepted (no signature check). */
function userOf(req, auth) {
  if (auth === 'jwt') {
    const [scheme, token] = (req.headers.authorization ?? '').split(' ');
    if (scheme !== 'Bearer' || !token) return null;
    try {
      const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
      return typeof claims.sub === 'string' && claims.sub ? claims.sub : null;
    } catch {
      return null;
    }
  }
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE && v.join('=')) return v.join('=');
  }
  return null;
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : null;
}

async function readRaw(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}

function configurable(a) {
  return a?.config?.configurable ?? {};
}

/* ---------------- the fake model ---------------- */

function defaultReply(messages) {
  const lastHuman = [...messages].reverse().find((m) => m.type === 'human');
  const lastTool = messages.at(-1)?.type === 'tool' ? messages.at(-1) : null;
  if (lastTool) return { content: `I used the tool. It said: ${String(lastTool.content).slice(0, 60)}` };
  const text = typeof lastHuman?.content === 'string' ? lastHuman.content : '';
  return {
    content: `You said: **${text}**. Here is some code:\n\n\`\`\`python\nprint("hello from the fake model")\n\`\`\`\n\nThat is all.`,
  };
}

async function* modelStep(thread, signal) {
  const response = script.shift() ?? defaultReply(thread.messages);
  if (response.error) {
    yield { error: response.error };
    return;
  }
  const id = `ai-${randomUUID()}`;
  if (response.tool_calls) {
    const msg = {
      id, type: 'ai', content: response.content ?? '', additional_kwargs: {}, response_metadata: {},
      tool_calls: response.tool_calls.map((c) => ({ id: c.id ?? `call_${randomUUID().slice(0, 8)}`, name: c.name, args: c.arguments ?? c.args ?? {}, type: 'tool_call' })),
    };
    thread.messages.push(msg);
    yield { patches: [msg] };
    return;
  }
  const text = String(response.content ?? '');
  const delay = response.chunk_delay_ms ?? 25;
  const msg = { id, type: 'ai', content: '', additional_kwargs: {}, response_metadata: {}, tool_calls: [] };
  thread.messages.push(msg);
  yield { patches: [{ ...msg }] };
  const tokens = text.match(/\S+\s*|\s+/g) ?? [];
  for (const tok of tokens) {
    if (signal.cancelled) return;
    await sleep(delay);
    msg.content += tok;
    yield { patches: [{ id, delta: tok }] };
  }
  yield { patches: [{ ...msg }] };
}

function runTools(thread) {
  const ai = [...thread.messages].reverse().find((m) => m.type === 'ai');
  const answered = new Set(thread.messages.filter((m) => m.type === 'tool').map((m) => m.tool_call_id));
  const out = [];
  for (const call of ai?.tool_calls ?? []) {
    if (answered.has(call.id)) continue;
    const msg = { id: `tool-${randomUUID()}`, type: 'tool', name: call.name, tool_call_id: call.id, content: JSON.stringify({ tool: call.name, args: call.args, result: 'ok' }), additional_kwargs: {}, response_metadata: {} };
    thread.messages.push(msg);
    out.push(msg);
  }
  return out;
}

function mergeMessages(thread, incoming) {
  for (const raw of incoming) {
    const msg = { additional_kwargs: {}, response_metadata: {}, ...raw, id: raw.id ?? `msg-${randomUUID()}` };
    const at = thread.messages.findIndex((m) => m.id === msg.id);
    if (at >= 0) thread.messages[at] = msg;
    else thread.messages.push(msg);
  }
}

async function* execute(thread, assistant, input, signal) {
  if (input !== null) {
    const list = Array.isArray(input) ? input : input.messages ?? [];
    const before = thread.messages.length;
    mergeMessages(thread, list);
    thread.next = ['agent'];
    yield { patches: thread.messages.slice(before) };
  } else if (thread.next.length === 0) {
    return;
  }
  const conf = configurable(assistant);
  for (let step = 0; step < 6; step++) {
    if (signal.cancelled) return;
    if (thread.next[0] === 'action') {
      const results = runTools(thread);
      thread.next = ['agent'];
      yield { patches: results };
      continue;
    }
    let last = null;
    for await (const ev of modelStep(thread, signal)) {
      if (ev.error) {
        yield ev;
        return; // next stays ['agent']: a retry continues here
      }
      last = ev;
      yield ev;
    }
    if (signal.cancelled) return;
    const ai = thread.messages.at(-1);
    if (ai?.type === 'ai' && ai.tool_calls?.length) {
      thread.next = ['action'];
      if (conf.interrupt_before_action) return;
      continue;
    }
    thread.next = [];
    return last;
  }
}

async function streamRun(req, res, user) {
  const body = await readJson(req);
  const thread = db.threads.get(body?.thread_id);
  if (!thread || thread.user_id !== user) return fail(res, 404, 'Thread not found');
  if (thread.busy) return fail(res, 409, 'Thread is busy with another run');
  const assistant = db.assistants.get(body.assistant_id ?? thread.assistant_id);
  const run = { run_id: randomUUID(), thread_id: thread.thread_id, assistant_id: assistant?.assistant_id ?? null, status: 'running', created_at: now(), cancelled: false };
  db.runs.set(run.run_id, run);
  thread.busy = true;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const write = (event, data) => res.write(`event: ${event}\r\ndata: ${data === undefined ? '' : JSON.stringify(data)}\r\n\r\n`);
  write('metadata', { run_id: run.run_id, thread_id: thread.thread_id });
  res.write(': ping\n\n');
  res.on('close', () => { if (!res.writableEnded) run.cancelled = true; });
  try {
    for await (const ev of execute(thread, assistant, body.input ?? null, run)) {
      if (ev.error) {
        write('error', ev.error);
        run.status = 'error';
        break;
      }
      if (ev.patches?.length) write('data', ev.patches);
    }
    if (run.status === 'running') run.status = run.cancelled ? 'interrupted' : 'success';
  } finally {
    thread.busy = false;
    thread.updated_at = now();
    res.write('event: end\n\n');
    res.end();
  }
}

/* ---------------- routing ---------------- */

function serveStatic(req, res) {
  const url = new URL(req.url, 'http://x');
  let file = normalize(join(DIST, decodeURIComponent(url.pathname)));
  if (!file.startsWith(DIST) || !existsSync(file) || statSync(file).isDirectory()) file = join(DIST, 'index.html');
  if (!existsSync(file)) return fail(res, 404, 'Run `npm run build` first');
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.map': 'application/json' };
  res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream' });
  createReadStream(file).pipe(res);
}

/** As Loom: the owner's id is shown to the owner only (null for anyone else). */
function assistantOut(a, viewer) {
  const { assistant_id, name, config, public: pub, user_id, updated_at } = a;
  return { assistant_id, name, config, public: pub, user_id: user_id === viewer ? user_id : null, updated_at };
}
function threadOut(t) {
  const { thread_id, assistant_id, name, user_id, updated_at, metadata } = t;
  return { thread_id, assistant_id, name, user_id, updated_at, metadata };
}

async function handle(req, res, AUTH) {
  const url = new URL(req.url, 'http://x');
  const p = url.pathname;
  const m = req.method;

  if (p === '/__fake/reset' && m === 'POST') {
    script = [];
    return send(res, 200, { ok: true });
  }
  if (p === '/__fake/responses' && m === 'POST') {
    const body = await readJson(req);
    script.push(...(body?.responses ?? []));
    return send(res, 200, { queued: script.length });
  }
  if (p === '/health') return send(res, 200, { status: 'ok' });
  if (p === '/auth/mode') return send(res, 200, { mode: AUTH });

  const api = /^\/(assistants|threads|runs|ingest|me)(\/|$)/.test(p);
  if (!api) return m === 'GET' ? serveStatic(req, res) : fail(res, 404, 'Not found');

  const user = userOf(req, AUTH);
  if (p === '/assistants/public' && m === 'GET')  // no credentials needed, as in OpenGPTs
    return send(res, 200, [...db.assistants.values()].filter((a) => a.public).map((a) => assistantOut(a, user)));
  if (!user) return fail(res, 401, AUTH === 'jwt' ? 'Missing or invalid bearer token' : `Missing the ${COOKIE} cookie`);
  let g;

  if (p === '/me') return send(res, 200, { user_id: user });

  if (p === '/runs/config_schema') return send(res, 200, SCHEMA);
  if (p === '/runs/stream' && m === 'POST') return streamRun(req, res, user);
  if ((g = p.match(/^\/runs\/([^/]+)\/cancel$/)) && m === 'POST') {
    const run = db.runs.get(g[1]);
    if (!run) return fail(res, 404, 'Run not found');
    run.cancelled = true;
    return send(res, 200, { ...run, cancelled: undefined });
  }

  if (p === '/assistants' && m === 'GET')
    return send(res, 200, [...db.assistants.values()].filter((a) => a.user_id === user).map((a) => assistantOut(a, user)));
  if (p === '/assistants' && m === 'POST') {
    const body = await readJson(req);
    if (!body?.name) return fail(res, 422, [{ loc: ['body', 'name'], msg: 'Field required', type: 'missing' }]);
    const a = { assistant_id: randomUUID(), name: body.name, config: body.config ?? {}, public: Boolean(body.public), user_id: user, updated_at: now() };
    db.assistants.set(a.assistant_id, a);
    return send(res, 200, assistantOut(a, user));
  }
  if ((g = p.match(/^\/assistants\/([^/]+)$/))) {
    const a = db.assistants.get(g[1]);
    const visible = a && (a.user_id === user || a.public);
    if (!visible) return fail(res, 404, 'Assistant not found');
    if (m === 'GET') return send(res, 200, assistantOut(a, user));
    if (a.user_id !== user) return fail(res, 404, 'Assistant not found');
    if (m === 'PUT') {
      const body = await readJson(req);
      Object.assign(a, { name: body.name, config: body.config, public: Boolean(body.public), updated_at: now() });
      return send(res, 200, assistantOut(a, user));
    }
    if (m === 'DELETE') {
      db.assistants.delete(a.assistant_id);
      return send(res, 200, {});
    }
  }

  if (p === '/threads' && m === 'GET')
    return send(res, 200, [...db.threads.values()].filter((t) => t.user_id === user).map(threadOut));
  if (p === '/threads' && m === 'POST') {
    const body = await readJson(req);
    const t = { thread_id: randomUUID(), assistant_id: body.assistant_id, name: body.name ?? '', user_id: user, updated_at: now(), metadata: {}, messages: [], next: [], busy: false };
    db.threads.set(t.thread_id, t);
    return send(res, 200, threadOut(t));
  }
  if ((g = p.match(/^\/threads\/([^/]+)(\/state|\/history)?$/))) {
    const t = db.threads.get(g[1]);
    if (!t || t.user_id !== user) return fail(res, 404, 'Thread not found');
    const sub = g[2];
    if (!sub && m === 'GET') return send(res, 200, threadOut(t));
    if (!sub && m === 'PUT') {
      const body = await readJson(req);
      Object.assign(t, { name: body.name, assistant_id: body.assistant_id ?? t.assistant_id, updated_at: now() });
      return send(res, 200, threadOut(t));
    }
    if (!sub && m === 'DELETE') {
      db.threads.delete(t.thread_id);
      return send(res, 200, {});
    }
    const retrieval = configurable(db.assistants.get(t.assistant_id)).type === 'chat_retrieval';
    if (sub === '/state' && m === 'GET')
      return send(res, 200, { values: retrieval ? { messages: t.messages } : t.messages, next: t.next });
    if (sub === '/state' && m === 'POST') {
      const body = await readJson(req);
      mergeMessages(t, Array.isArray(body?.values) ? body.values : body?.values?.messages ?? []);
      return send(res, 200, {});
    }
    if (sub === '/history' && m === 'GET') return send(res, 200, [{ values: t.messages, next: t.next }]);
  }

  if (p === '/ingest' && m === 'POST') {
    const raw = await readRaw(req);
    if (raw.length > 5 * 1024 * 1024) return fail(res, 413, 'File too large');
    const text = raw.toString('latin1');
    const files = [...text.matchAll(/name="files"; filename="([^"]*)"/g)].map((x) => x[1]);
    if (!files.length) return fail(res, 422, 'No files');
    if (files.some((f) => f.endsWith('.exe'))) return fail(res, 415, 'Unsupported file type');
    await sleep(200);
    return send(res, 200, files.map((name) => ({ file: name, chunks: 1 })));
  }

  return fail(res, 404, 'Not found');
}

export function startMockServer(port = 0, host = '127.0.0.1', { auth = 'cookie' } = {}) {
  const server = createServer((req, res) => {
    handle(req, res, auth).catch((err) => {
      console.error(err);
      if (!res.headersSent) fail(res, 500, String(err));
    });
  });
  return new Promise((resolveStart) => {
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolveStart({ server, url: `http://${host}:${actual}` });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 8100);
  const { url } = await startMockServer(port, '127.0.0.1', { auth: process.env.LOOM_MOCK_AUTH ?? 'cookie' });
  console.log(`mock Loom API on ${url} (fake control: ${url}/__fake)`);
}
