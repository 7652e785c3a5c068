/** REST calls to the Loom API (same origin, JSON). */
import { authHeaders } from './auth';
import { readRunEvents, type RunStreamEvent } from './sse';
import type {
  Assistant,
  AssistantInput,
  AuthModeInfo,
  Branches,
  Message,
  RunRecord,
  RunRequest,
  StoredFile,
  Thread,
  ThreadState,
} from './types';

export class ApiError extends Error {
  readonly status: number;
  readonly detail: unknown;

  constructor(status: number, message: string, detail?: unknown) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
  }
}

/** Human-readable text of a FastAPI `detail` (a string or a list of validation errors). */
export function formatDetail(detail: unknown): string | null {
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    const lines = detail.map((item) => {
      if (item && typeof item === 'object') {
        const rec = item as Record<string, unknown>;
        const loc = Array.isArray(rec.loc) ? rec.loc.filter((x) => x !== 'body').join('.') : '';
        const msg = typeof rec.msg === 'string' ? rec.msg : JSON.stringify(item);
        return loc ? `${loc}: ${msg}` : msg;
      }
      return String(item);
    });
    return lines.join('\n') || null;
  }
  if (detail && typeof detail === 'object') {
    const rec = detail as Record<string, unknown>;
    if (typeof rec.message === 'string') return rec.message;
    return JSON.stringify(detail);
  }
  return null;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'The request was not valid.',
  401: 'You are not signed in.',
  403: 'You are not allowed to do that.',
  404: 'Not found.',
  409: 'This conversation is busy with another run.',
  413: 'The file is too large.',
  415: 'This file type is not supported.',
  422: 'The request was not valid.',
  429: 'Too many requests; try again in a moment.',
  502: 'The model provider failed to answer.',
  503: 'The service is unavailable.',
};

export function errorFor(status: number, body: unknown): ApiError {
  let detail: unknown = null;
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const rec = body as Record<string, unknown>;
    detail = 'detail' in rec ? rec.detail : typeof rec.message === 'string' ? rec.message : null;
  } else if (typeof body === 'string' && body.length < 300 && !/^\s*</.test(body)) {
    detail = body.trim() || null; // a plain-text error, not an HTML error page
  }
  const text =
    formatDetail(detail) ?? STATUS_TEXT[status] ?? `The server answered with status ${status}.`;
  return new ApiError(status, text, detail);
}

type UnauthorizedListener = (error: ApiError) => void;
let onUnauthorized: UnauthorizedListener | null = null;

/** Called on every 401, so the app can go back to the sign-in screen. */
export function setUnauthorizedHandler(listener: UnauthorizedListener | null): void {
  onUnauthorized = listener;
}

async function readBody(res: Response): Promise<unknown> {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  /** Do not report a 401 to the app (used while probing credentials). */
  quiet401?: boolean;
}

async function send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json', ...authHeaders() };
  let body: BodyInit | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body,
      signal: opts.signal,
      credentials: 'same-origin',
    });
  } catch (err) {
    if (err instanceof Error && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'Cannot reach the server. Check your connection and try again.');
  }
  if (!res.ok) {
    const error = errorFor(res.status, await readBody(res));
    if (res.status === 401 && !opts.quiet401) onUnauthorized?.(error);
    throw error;
  }
  return res;
}

async function request<T>(method: string, path: string, opts?: RequestOptions): Promise<T> {
  const res = await send(method, path, opts);
  return (await readBody(res)) as T;
}

const enc = encodeURIComponent;

export const api = {
  authMode: () => request<AuthModeInfo>('GET', '/auth/mode', { quiet401: true }),
  /** The signed-in user; 404 when the server has no /me endpoint. */
  me: () => request<Record<string, unknown>>('GET', '/me', { quiet401: true }),

  listAssistants: (quiet401 = false) =>
    request<Assistant[]>('GET', '/assistants', { quiet401 }),
  listPublicAssistants: () => request<Assistant[]>('GET', '/assistants/public'),
  getAssistant: (id: string) => request<Assistant>('GET', `/assistants/${enc(id)}`),
  createAssistant: (input: AssistantInput) =>
    request<Assistant>('POST', '/assistants', { body: input }),
  updateAssistant: (id: string, input: AssistantInput) =>
    request<Assistant>('PUT', `/assistants/${enc(id)}`, { body: input }),
  deleteAssistant: (id: string) => request<unknown>('DELETE', `/assistants/${enc(id)}`),

  listThreads: () => request<Thread[]>('GET', '/threads'),
  /** Threads whose title or messages contain the words of `q` (server-side search). */
  searchThreads: (q: string, signal?: AbortSignal) =>
    request<Thread[]>('GET', `/threads?q=${enc(q)}`, signal ? { signal } : {}),
  getThread: (id: string) => request<Thread>('GET', `/threads/${enc(id)}`),
  createThread: (input: { name: string; assistant_id: string }) =>
    request<Thread>('POST', '/threads', { body: input }),
  updateThread: (id: string, input: { name: string; assistant_id: string | null }) =>
    request<Thread>('PUT', `/threads/${enc(id)}`, { body: input }),
  deleteThread: (id: string) => request<unknown>('DELETE', `/threads/${enc(id)}`),
  getThreadState: (id: string) => request<ThreadState>('GET', `/threads/${enc(id)}/state`),
  updateThreadState: (id: string, values: Message[]) =>
    request<unknown>('POST', `/threads/${enc(id)}/state`, { body: { values } }),

  /** The thread's pending or running runs (newest first). */
  activeRuns: (threadId: string) =>
    request<RunRecord[]>(
      'GET',
      `/threads/${enc(threadId)}/runs?status=pending&status=running`,
    ),
  getBranches: (id: string) => request<Branches>('GET', `/threads/${enc(id)}/branches`),
  /** Make the branch ending at `checkpointId` the thread's current one; its new state. */
  switchBranch: (id: string, checkpointId: string) =>
    request<ThreadState>('POST', `/threads/${enc(id)}/branches`, {
      body: { checkpoint_id: checkpointId },
    }),
  threadFiles: (id: string) => request<StoredFile[]>('GET', `/threads/${enc(id)}/files`),
  deleteThreadFile: (id: string, name: string) =>
    request<unknown>('DELETE', `/threads/${enc(id)}/files/${enc(name)}`),
  assistantFiles: (id: string) => request<StoredFile[]>('GET', `/assistants/${enc(id)}/files`),
  deleteAssistantFile: (id: string, name: string) =>
    request<unknown>('DELETE', `/assistants/${enc(id)}/files/${enc(name)}`),

  getConfigSchema: () => request<unknown>('GET', '/runs/config_schema'),
  createRun: (body: RunRequest) => request<RunRecord>('POST', '/runs', { body }),
  getRun: (id: string) => request<RunRecord>('GET', `/runs/${enc(id)}`),
  cancelRun: (id: string) => request<unknown>('POST', `/runs/${enc(id)}/cancel`),

  /**
   * Start a streamed run and yield its typed events. HTTP errors (409 busy, 404, 422...) are
   * thrown as ApiError before the first event.
   */
  async *streamRun(body: RunRequest, signal?: AbortSignal): AsyncGenerator<RunStreamEvent> {
    yield* openStream('/runs/stream?format=compact', 'POST', body, undefined, signal);
  },

  /**
   * Follow a run started elsewhere (another tab, a reload, a dropped connection): from its
   * start, or after the event `lastEventId`. 404 when the run has ended and its log is gone.
   */
  async *joinRun(runId: string, lastEventId?: string, signal?: AbortSignal): AsyncGenerator<RunStreamEvent> {
    yield* openStream(`/runs/${enc(runId)}/stream?format=compact`, 'GET', undefined, lastEventId, signal);
  },
};

async function* openStream(
  path: string,
  method: 'GET' | 'POST',
  body: unknown,
  lastEventId: string | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<RunStreamEvent> {
    const headers: Record<string, string> = { Accept: 'text/event-stream', ...authHeaders() };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        credentials: 'same-origin',
        cache: 'no-store',
      });
    } catch (err) {
      if (err instanceof Error && err.name === 'AbortError') throw err;
      throw new ApiError(0, 'Cannot reach the server. Check your connection and try again.');
    }
    if (!res.ok) {
      const error = errorFor(res.status, await readBody(res));
      if (res.status === 401) onUnauthorized?.(error);
      throw error;
    }
    if (!res.body) throw new ApiError(res.status, 'The server sent an empty stream.');
    yield* readRunEvents(res.body, signal);
}
