import { describe, expect, it } from 'vitest';
import { readRunEvents, readSSE, SSEParser, toRunEvent, type SSEEvent } from './sse';

const encoder = new TextEncoder();

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}

async function collect(chunks: Uint8Array[]): Promise<SSEEvent[]> {
  const out: SSEEvent[] = [];
  for await (const ev of readSSE(streamOf(chunks))) out.push(ev);
  return out;
}

function parseAll(text: string): SSEEvent[] {
  const p = new SSEParser();
  return [...p.push(text), ...p.end()];
}

// A realistic compact run stream: heartbeat, multi-byte text, CRLF, multi-line data, empty end.
const SAMPLE =
  ': ping\r\n' +
  'event: metadata\r\n' +
  'data: {"run_id": "r1", "thread_id": "t1"}\r\n' +
  '\r\n' +
  'event: data\n' +
  'data: [{"id": "m1", "type": "ai", "content": "Grüße "}]\n' +
  '\n' +
  ': ping\n' +
  '\n' +
  'event: data\r' +
  'data: [{"id": "m1", "delta": "🌍 "},\r' +
  'data:  {"id": "m1", "delta": "日本語"}]\r' +
  '\r' +
  'event: end\n' +
  '\n';

const EXPECTED: SSEEvent[] = [
  { event: 'metadata', data: '{"run_id": "r1", "thread_id": "t1"}' },
  { event: 'data', data: '[{"id": "m1", "type": "ai", "content": "Grüße "}]' },
  { event: 'data', data: '[{"id": "m1", "delta": "🌍 "},\n {"id": "m1", "delta": "日本語"}]' },
  { event: 'end', data: '' },
];

describe('SSEParser', () => {
  it('parses a whole stream', () => {
    expect(parseAll(SAMPLE)).toEqual(EXPECTED);
  });

  it('joins multi-line data and strips one leading space only', () => {
    expect(parseAll('data:a\ndata:  b\ndata\n\n')).toEqual([{ event: 'message', data: 'a\n b\n' }]);
  });

  it('ignores comments and unknown fields, keeps id and retry', () => {
    const events = parseAll(': hello\nfoo: bar\nid: 7\nretry: 1500\nevent: x\ndata: 1\n\ndata: 2\n\n');
    expect(events).toEqual([
      { event: 'x', data: '1', id: '7', retry: 1500 },
      { event: 'message', data: '2', id: '7' },
    ]);
  });

  it('does not dispatch blank lines alone or comment-only blocks', () => {
    expect(parseAll('\n\n: ping\n\n\r\n')).toEqual([]);
  });

  it('delivers an event with a name but no data', () => {
    expect(parseAll('event: end\n\n')).toEqual([{ event: 'end', data: '' }]);
  });

  it('delivers a final event not followed by a blank line', () => {
    expect(parseAll('event: end\ndata: null')).toEqual([{ event: 'end', data: 'null' }]);
  });

  it('strips a leading byte order mark', () => {
    expect(parseAll('\ufeffdata: x\n\n')).toEqual([{ event: 'message', data: 'x' }]);
  });

  it('treats a CR at the end of a chunk followed by LF as one line ending', () => {
    const p = new SSEParser();
    const events = [...p.push('data: a\r'), ...p.push('\n\r'), ...p.push('\n'), ...p.end()];
    expect(events).toEqual([{ event: 'message', data: 'a' }]);
  });

  it('treats a CR at the end of a chunk followed by other text as a line ending', () => {
    const p = new SSEParser();
    const events = [...p.push('data: a\r'), ...p.push('\rdata: b\n\n'), ...p.end()];
    expect(events).toEqual([
      { event: 'message', data: 'a' },
      { event: 'message', data: 'b' },
    ]);
  });
});

describe('readSSE over a byte stream', () => {
  const bytes = encoder.encode(SAMPLE);

  it('gives the same events however the bytes are split in two', async () => {
    for (let i = 0; i <= bytes.length; i++) {
      const events = await collect([bytes.slice(0, i), bytes.slice(i)]);
      expect(events, `split at byte ${i}`).toEqual(EXPECTED);
    }
  });

  it('gives the same events when split into three pieces at many points', async () => {
    for (let i = 1; i < bytes.length; i += 3) {
      for (let j = i + 1; j < bytes.length; j += 5) {
        const events = await collect([bytes.slice(0, i), bytes.slice(i, j), bytes.slice(j)]);
        expect(events, `split at ${i}, ${j}`).toEqual(EXPECTED);
      }
    }
  });

  it('gives the same events when every byte is its own chunk', async () => {
    const chunks = Array.from(bytes, (b) => new Uint8Array([b]));
    expect(await collect(chunks)).toEqual(EXPECTED);
  });

  it('stops when the signal is aborted', async () => {
    const controller = new AbortController();
    let pull = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        pull += 1;
        c.enqueue(encoder.encode(`data: ${pull}\n\n`));
      },
    });
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const ev of readSSE(body, controller.signal)) {
          seen.push(ev.data);
          if (seen.length === 3) controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen).toEqual(['1', '2', '3']);
  });
});

describe('run events', () => {
  it('types the events of a run stream', async () => {
    const events = [];
    for await (const ev of readRunEvents(streamOf([encoder.encode(SAMPLE)]))) events.push(ev);
    expect(events).toEqual([
      { type: 'metadata', run_id: 'r1', thread_id: 't1' },
      { type: 'data', payload: [{ id: 'm1', type: 'ai', content: 'Grüße ' }] },
      {
        type: 'data',
        payload: [
          { id: 'm1', delta: '🌍 ' },
          { id: 'm1', delta: '日本語' },
        ],
      },
      { type: 'end' },
    ]);
  });

  it('reads error events', () => {
    expect(
      toRunEvent({ event: 'error', data: '{"status_code": 502, "message": "upstream failed"}' }),
    ).toEqual({ type: 'error', status_code: 502, message: 'upstream failed' });
    expect(toRunEvent({ event: 'error', data: 'boom' })).toEqual({
      type: 'error',
      status_code: null,
      message: 'boom',
    });
    expect(toRunEvent({ event: 'error', data: '' })).toMatchObject({ type: 'error' });
  });

  it('accepts end with null data and unknown events', () => {
    expect(toRunEvent({ event: 'end', data: 'null' })).toEqual({ type: 'end' });
    expect(toRunEvent({ event: 'custom', data: 'x' })).toEqual({
      type: 'other',
      event: 'custom',
      data: 'x',
    });
    expect(toRunEvent({ event: 'data', data: '{not json' })).toMatchObject({ type: 'other' });
  });
});

describe('event ids', () => {
  it('carries each event’s id (to resume with Last-Event-ID)', async () => {
    const body =
      'event: metadata\nid: 0\ndata: {"run_id": "r1", "thread_id": "t1"}\n\n' +
      'event: data\nid: 7\ndata: [{"id": "m1", "delta": "x"}]\n\n' +
      'event: end\nid: 8\n\n';
    const events = [];
    for await (const ev of readRunEvents(streamOf([encoder.encode(body)]))) events.push(ev);
    expect(events.map((e) => [e.type, e.id])).toEqual([
      ['metadata', '0'],
      ['data', '7'],
      ['end', '8'],
    ]);
  });
});
