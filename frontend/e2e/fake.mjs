/**
 * The one place that talks to the fake LLM's control endpoint (LOOM_E2E_FAKE_URL).
 *
 * Contract assumed (adjust here if the Python fake differs):
 *   POST {FAKE_URL}/reset                 -> forget queued responses
 *   POST {FAKE_URL}/responses  {"responses": [R, ...]}   -> queue responses, used in order by
 *        the next chat-completion calls; when the queue is empty the fake answers by itself.
 *   R is one of
 *     {"content": "text", "chunk_delay_ms": 40}        a streamed text reply, word by word
 *     {"tool_calls": [{"name": "tool", "arguments": {...}}]}   a reply that calls tools
 *     {"error": {"status_code": 502, "message": "..."}}       the provider fails; only used
 *        when LOOM_E2E_FAKE_ERRORS=1 (or against the mock), as the fake may not support it
 */
export const FAKE_URL = (process.env.LOOM_E2E_FAKE_URL ?? '').replace(/\/+$/, '') || null;

async function post(path, body) {
  const res = await fetch(`${FAKE_URL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  if (!res.ok) throw new Error(`fake LLM control ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json().catch(() => null);
}

const MOCK = process.env.LOOM_E2E_MOCK === '1';

/**
 * Loom's Python fake (tests/fakes/openai_server.py) is scripted one reply at a time through
 * POST /_control/reply ({text, token_delay, tool_calls: [{name, args}]}), /_control/fail
 * ({status, message}) and /_control/reset; the in-memory mock takes the list form above.
 */
async function enqueue(responses) {
  if (MOCK) return post('/responses', { responses });
  for (const r of responses) {
    if (r.error) {
      await post('/_control/fail', { status: r.error.status_code ?? 500, message: r.error.message });
    } else if (r.tool_calls) {
      await post('/_control/reply', {
        text: r.content ?? '',
        tool_calls: r.tool_calls.map((c) => ({
          name: c.name,
          args: typeof c.arguments === 'string' ? JSON.parse(c.arguments) : (c.arguments ?? {}),
        })),
      });
    } else {
      await post('/_control/reply', { text: r.content ?? '', token_delay: (r.chunk_delay_ms ?? 0) / 1000 });
    }
  }
  return null;
}

export const fake = {
  available: Boolean(FAKE_URL),
  canFail: Boolean(FAKE_URL),
  enqueue,
  reset: () => (FAKE_URL ? post(MOCK ? '/reset' : '/_control/reset') : Promise.resolve(null)),
  /** Queue a slowly streamed text reply. */
  reply: (content, chunkDelayMs = 60) =>
    FAKE_URL ? enqueue([{ content, chunk_delay_ms: chunkDelayMs }]) : Promise.resolve(null),
  /** Queue a reply that breaks off: `kind` "cut" closes the connection after `afterTokens` tokens. */
  fault: (kind, afterTokens, text, chunkDelayMs = 30) =>
    MOCK
      ? enqueue([{ error: { status_code: 500, message: 'cut' } }])
      : post('/_control/fault', { kind, after_tokens: afterTokens, text, token_delay: chunkDelayMs / 1000 }),
  /** Queue a reply that calls one tool, then a text reply for after the tool ran. */
  toolCallThenReply: (name, args, after) =>
    enqueue([{ tool_calls: [{ name, arguments: args }] }, { content: after, chunk_delay_ms: 10 }]),
};
