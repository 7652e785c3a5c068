/**
 * The one module that reads Server-Sent Events.
 *
 * `SSEParser` is an incremental parser for the `text/event-stream` format (WHATWG HTML §9.2):
 * it accepts text in arbitrary chunks (a line, a CRLF pair or a field may be split anywhere),
 * understands LF, CR and CRLF line endings, multi-line `data`, `id`, `retry` and comment lines.
 * `readSSE` decodes a fetch body (UTF-8, multi-byte characters split across chunks included)
 * and `readRunEvents` turns the raw events of `POST /runs/stream` into typed run events.
 */

export interface SSEEvent {
  /** The `event:` field, or "message" when absent. */
  event: string;
  /** The `data:` lines joined with "\n" ("" when the event had no data line). */
  data: string;
  /** The last event id seen on the stream, if any. */
  id?: string;
  /** Reconnection time in ms, when the event carried a `retry:` field. */
  retry?: number;
}

export class SSEParser {
  private buffer = '';
  private pendingCR = false;
  private started = false;
  private eventType = '';
  private dataLines: string[] = [];
  private hasData = false;
  private lastId: string | undefined;
  private retry: number | undefined;
  private hasFields = false;

  /** Feed decoded text; returns every event completed by this chunk. */
  push(chunk: string): SSEEvent[] {
    if (!this.started && chunk.length > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    const events: SSEEvent[] = [];
    let text = chunk;
    if (this.pendingCR) {
      // The previous chunk ended in CR: a leading LF belongs to that line ending.
      this.pendingCR = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 < this.buffer.length) {
          if (this.buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
      const ev = this.processLine(line);
      if (ev) events.push(ev);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** Call at end of stream: returns a final event that was not followed by a blank line. */
  end(): SSEEvent[] {
    const events: SSEEvent[] = [];
    if (this.buffer.length > 0) {
      const ev = this.processLine(this.buffer);
      this.buffer = '';
      if (ev) events.push(ev);
    }
    const last = this.dispatch();
    if (last) events.push(last);
    return events;
  }

  private processLine(line: string): SSEEvent | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null; // comment / heartbeat
    const colon = line.indexOf(':');
    let field: string;
    let value: string;
    if (colon === -1) {
      field = line;
      value = '';
    } else {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
    }
    switch (field) {
      case 'event':
        this.eventType = value;
        this.hasFields = true;
        break;
      case 'data':
        this.dataLines.push(value);
        this.hasData = true;
        this.hasFields = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) {
          this.retry = Number(value);
          this.hasFields = true;
        }
        break;
      default:
        break; // unknown fields are ignored
    }
    return null;
  }

  private dispatch(): SSEEvent | null {
    // Unlike EventSource, an event that has a name but no data is still delivered:
    // Loom's `end` event may come without a data line.
    if (!this.hasFields) return null;
    const ev: SSEEvent = {
      event: this.eventType || 'message',
      data: this.hasData ? this.dataLines.join('\n') : '',
    };
    if (this.lastId !== undefined) ev.id = this.lastId;
    if (this.retry !== undefined) ev.retry = this.retry;
    this.eventType = '';
    this.dataLines = [];
    this.hasData = false;
    this.retry = undefined;
    this.hasFields = false;
    return ev;
  }
}

/** Read a `text/event-stream` body, yielding events as they complete. */
export async function* readSSE(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<SSEEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  const parser = new SSEParser();
  let finished = false;
  const onAbort = () => {
    reader.cancel().catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      if (signal?.aborted) throw abortError();
      const { value, done } = await reader.read();
      if (done) break;
      const events = parser.push(decoder.decode(value, { stream: true }));
      for (const ev of events) yield ev;
    }
    finished = true;
    if (signal?.aborted) throw abortError();
    for (const ev of parser.push(decoder.decode())) yield ev;
    for (const ev of parser.end()) yield ev;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // The consumer stopped early (or failed): close the connection.
    if (!finished) reader.cancel().catch(() => undefined);
    try {
      reader.releaseLock();
    } catch {
      /* a read may still be pending after cancel */
    }
  }
}

function abortError(): Error {
  const err = new Error('The stream was aborted');
  err.name = 'AbortError';
  return err;
}

/* ------------------------------------------------------------------ */
/* Typed events of POST /runs/stream                                   */
/* ------------------------------------------------------------------ */

export type RunStreamEvent = (
  | { type: 'metadata'; run_id: string | null; thread_id: string | null }
  | { type: 'data'; payload: unknown[] }
  | { type: 'error'; status_code: number | null; message: string }
  | { type: 'end' }
  | { type: 'other'; event: string; data: string }
) & {
  /** The event's `id:` (the run's event sequence number): resume after it with Last-Event-ID. */
  id?: string;
};

function parseJSON(data: string): unknown {
  if (data.trim() === '') return null;
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return undefined;
  }
}

function asRecord(value: unknown): Record<string, unknown> | null {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : null;
}

/** Interpret one raw SSE event of a run stream. */
export function toRunEvent(raw: SSEEvent): RunStreamEvent {
  switch (raw.event) {
    case 'metadata': {
      const obj = asRecord(parseJSON(raw.data));
      return {
        type: 'metadata',
        run_id: typeof obj?.run_id === 'string' ? obj.run_id : null,
        thread_id: typeof obj?.thread_id === 'string' ? obj.thread_id : null,
      };
    }
    case 'data': {
      const parsed = parseJSON(raw.data);
      if (Array.isArray(parsed)) return { type: 'data', payload: parsed };
      if (asRecord(parsed)) return { type: 'data', payload: [parsed] };
      return { type: 'other', event: raw.event, data: raw.data };
    }
    case 'error': {
      const parsed = parseJSON(raw.data);
      const obj = asRecord(parsed);
      const status = obj && typeof obj.status_code === 'number' ? obj.status_code : null;
      let message = 'The run failed.';
      if (obj && typeof obj.message === 'string') message = obj.message;
      else if (obj && typeof obj.detail === 'string') message = obj.detail;
      else if (typeof parsed === 'string' && parsed) message = parsed;
      else if (parsed === undefined && raw.data.trim()) message = raw.data.trim();
      return { type: 'error', status_code: status, message };
    }
    case 'end':
      return { type: 'end' };
    default:
      return { type: 'other', event: raw.event, data: raw.data };
  }
}

/** Typed events of a run stream body, each with its `id` when it had one. */
export async function* readRunEvents(
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
): AsyncGenerator<RunStreamEvent> {
  for await (const raw of readSSE(body, signal)) {
    const ev: RunStreamEvent = toRunEvent(raw);
    if (raw.id !== undefined) ev.id = raw.id;
    yield ev;
  }
}
