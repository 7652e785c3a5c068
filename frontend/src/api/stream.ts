/**
 * Pure helpers that turn what the server sends into the message list the UI shows.
 *
 * A compact stream (`POST /runs/stream?format=compact`) sends `data` events whose payload is a
 * list of patches. A patch is either a whole message (it has a `type`: insert it, or replace the
 * message with the same `id`), `{"id", "delta"}` (append text to that message's content) or
 * `{"id", "removed": true}` (drop a message a crashed attempt of the run had half written).
 * The OpenGPTs format (a list of whole messages) is a special case and is handled the same way.
 */
import type { ContentPart, Message, ThreadState, ToolCall } from './types';

export interface DeltaPatch {
  id: string;
  delta: string;
}

export interface RemovePatch {
  id: string;
  removed: true;
}

export type Patch = Message | DeltaPatch | RemovePatch;

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function isDeltaPatch(value: unknown): value is DeltaPatch {
  return (
    isRecord(value) &&
    typeof value.id === 'string' &&
    typeof value.delta === 'string' &&
    typeof value.type !== 'string'
  );
}

export function isRemovePatch(value: unknown): value is RemovePatch {
  return (
    isRecord(value) &&
    typeof value.id === 'string' &&
    value.removed === true &&
    typeof value.type !== 'string'
  );
}

export function isMessagePatch(value: unknown): value is Message {
  return isRecord(value) && typeof value.type === 'string';
}

/** Content of the tool message the UI adds when the user rejects a tool call. */
export const REJECTION_TEXT = 'The user rejected this tool call.';

let anonymousCounter = 0;

/** Make a server message safe to render: an id, a content, well-formed tool calls. */
export function normalizeMessage(raw: Record<string, unknown>): Message {
  const msg = { ...raw } as Message;
  // Streamed chunks may be serialised as "AIMessageChunk" and the like.
  const chunk = /^(AI|Human|Tool|System)MessageChunk$/.exec(String(msg.type));
  if (chunk) msg.type = chunk[1]!.toLowerCase();
  if (typeof msg.id !== 'string' || msg.id === '') {
    anonymousCounter += 1;
    msg.id = `anonymous-${anonymousCounter}`;
  }
  if (typeof msg.content !== 'string' && !Array.isArray(msg.content)) {
    msg.content = msg.content == null ? '' : JSON.stringify(msg.content);
  }
  const calls = toolCallsOf(msg);
  if (calls.length > 0 || Array.isArray(msg.tool_calls)) msg.tool_calls = calls;
  return msg;
}

/** Plain text of a message's content (text parts joined). */
export function contentText(content: Message['content'] | undefined | null): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part: ContentPart | string) => {
      if (typeof part === 'string') return part;
      if (part && typeof part.text === 'string') return part.text;
      return '';
    })
    .join('');
}

function appendDelta(msg: Message, delta: string): Message {
  if (typeof msg.content === 'string') return { ...msg, content: msg.content + delta };
  const parts = Array.isArray(msg.content) ? msg.content.slice() : [];
  const last = parts[parts.length - 1];
  if (last && last.type === 'text' && typeof last.text === 'string') {
    parts[parts.length - 1] = { ...last, text: last.text + delta };
  } else {
    parts.push({ type: 'text', text: delta });
  }
  return { ...msg, content: parts };
}

/**
 * Apply a list of patches to a message list. Never mutates its inputs; messages that did not
 * change keep their identity (so React can skip re-rendering them).
 */
export function applyPatches(messages: readonly Message[], patches: readonly unknown[]): Message[] {
  let out = messages.slice();
  const index = new Map<string, number>();
  out.forEach((m, i) => index.set(m.id, i));

  for (const patch of patches) {
    if (isRemovePatch(patch)) {
      if (index.has(patch.id)) {
        out = out.filter((m) => m.id !== patch.id);
        index.clear();
        out.forEach((m, i) => index.set(m.id, i));
      }
      continue;
    }
    if (isMessagePatch(patch)) {
      const msg = normalizeMessage(patch as unknown as Record<string, unknown>);
      const at = index.get(msg.id);
      if (at !== undefined) {
        out[at] = msg;
        continue;
      }
      // A local (optimistic) message the server echoes back under its own id.
      if (msg.type === 'human') {
        const text = contentText(msg.content);
        const local = out.findIndex(
          (m) => m.pending === true && m.type === 'human' && contentText(m.content) === text,
        );
        if (local !== -1) {
          index.delete(out[local]!.id);
          out[local] = msg;
          index.set(msg.id, local);
          continue;
        }
      }
      index.set(msg.id, out.length);
      out.push(msg);
    } else if (isDeltaPatch(patch)) {
      const at = index.get(patch.id);
      if (at !== undefined) {
        out[at] = appendDelta(out[at]!, patch.delta);
      } else {
        // A delta for a message we have not seen yet starts a new AI message.
        index.set(patch.id, out.length);
        out.push({ id: patch.id, type: 'ai', content: patch.delta });
      }
    }
    // Anything else is ignored: a newer server may send patch kinds this UI does not know.
  }
  return out;
}

/** The message list of a thread state (`values` is a list, or `{messages}` for retrieval). */
export function stateMessages(state: Pick<ThreadState, 'values'> | null | undefined): Message[] {
  const values = state?.values;
  let list: unknown[] = [];
  if (Array.isArray(values)) list = values;
  else if (isRecord(values) && Array.isArray(values.messages)) list = values.messages;
  return list.filter(isRecord).map((m) => normalizeMessage(m));
}

function parseArgs(value: unknown): Record<string, unknown> {
  if (isRecord(value)) return value;
  if (typeof value === 'string') {
    try {
      const parsed: unknown = JSON.parse(value);
      if (isRecord(parsed)) return parsed;
    } catch {
      /* fall through */
    }
    return value ? { input: value } : {};
  }
  return {};
}

/** Tool calls of an AI message: `tool_calls`, or OpenAI's raw `additional_kwargs.tool_calls`. */
export function toolCallsOf(msg: Message): ToolCall[] {
  if (Array.isArray(msg.tool_calls)) {
    return msg.tool_calls.filter(isRecord).map((tc, i) => ({
      ...tc,
      id: typeof tc.id === 'string' ? tc.id : `call-${i}`,
      name: typeof tc.name === 'string' ? tc.name : 'tool',
      args: parseArgs(tc.args),
    }));
  }
  const raw = msg.additional_kwargs?.tool_calls;
  if (!Array.isArray(raw)) return [];
  return raw.filter(isRecord).map((tc, i) => {
    const fn = isRecord(tc.function) ? tc.function : {};
    return {
      id: typeof tc.id === 'string' ? tc.id : `call-${i}`,
      name: typeof fn.name === 'string' ? fn.name : 'tool',
      args: parseArgs(fn.arguments),
    };
  });
}

/**
 * The tool calls waiting for the user's approval: the thread is paused (`next` is not empty)
 * and its last AI message asks for tools that have no result yet.
 */
export function pendingToolCalls(
  messages: readonly Message[],
  next: readonly string[] | null | undefined,
): { message: Message; calls: ToolCall[] } | null {
  if (!next || next.length === 0) return null;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.type === 'tool') continue;
    if (m.type !== 'ai') return null;
    const calls = toolCallsOf(m);
    if (calls.length === 0) return null;
    const answered = new Set(
      messages
        .slice(i + 1)
        .filter((x) => x.type === 'tool')
        .map((x) => x.tool_call_id),
    );
    const open = calls.filter((c) => !answered.has(c.id));
    return open.length > 0 ? { message: m, calls: open } : null;
  }
  return null;
}

/**
 * Merge a reloaded message list with the local one. Local messages the server does not know
 * are kept: only unconfirmed (pending) ones by default, every one with `keepAll` (after the
 * user stopped a run, so the partial answer stays on screen).
 */
export function mergeUnconfirmed(
  server: readonly Message[],
  local: readonly Message[],
  keepAll = false,
): Message[] {
  const known = new Set(server.map((m) => m.id));
  const serverHumanTexts = new Set(
    server.filter((m) => m.type === 'human').map((m) => contentText(m.content)),
  );
  const extra = local.filter((m) => {
    if (known.has(m.id)) return false;
    if (m.pending === true) return !serverHumanTexts.has(contentText(m.content));
    return keepAll;
  });
  return [...server, ...extra];
}

/** The message as it is sent to the server (client-only fields removed). */
export function toWire(msg: Message): Message {
  const copy = { ...msg };
  delete copy.pending;
  return copy;
}

/** A passage the retrieval tool returned (its tool message's `artifact`). */
export interface Passage {
  filename: string;
  text: string;
  page: number | null;
  score: number | null;
}

function passagesOf(msg: Message): Passage[] {
  if (msg.type !== 'tool' || msg.name !== 'retrieval' || !Array.isArray(msg.artifact)) return [];
  return (msg.artifact as unknown[]).filter(isRecord).map((p) => ({
    filename: String(p.filename ?? p.source ?? 'document'),
    text: typeof p.text === 'string' ? p.text : '',
    page: typeof p.page === 'number' ? p.page : null,
    score: typeof p.score === 'number' ? p.score : null,
  }));
}

/** One exchange: a human message and what followed it until the next one. */
export interface Turn {
  /** The id of the first message after the human one (where a regenerated reply forks). */
  firstReplyId: string | null;
  /** The reply the user reads: the last AI message of the turn with text (else the last AI). */
  answerId: string | null;
  /** Passages retrieved during the turn, in order (numbered citations of the answer). */
  passages: Passage[];
}

/** The turns of a conversation, keyed by the id of each turn's answer. */
export function turnsByAnswer(messages: readonly Message[]): Map<string, Turn> {
  const out = new Map<string, Turn>();
  let i = 0;
  while (i < messages.length) {
    if (messages[i]!.type !== 'human') {
      i++;
      continue;
    }
    let end = i + 1;
    while (end < messages.length && messages[end]!.type !== 'human') end++;
    const replies = messages.slice(i + 1, end);
    const ais = replies.filter((m) => m.type === 'ai');
    const withText = ais.filter((m) => contentText(m.content).trim() !== '');
    const answer = withText[withText.length - 1] ?? ais[ais.length - 1];
    if (answer) {
      out.set(answer.id, {
        firstReplyId: replies[0]?.id ?? null,
        answerId: answer.id,
        passages: replies.flatMap(passagesOf),
      });
    }
    i = end;
  }
  return out;
}

/** `stopped` or `failed` when the reply was cut short (kept by the server, marked). */
export function cutShort(msg: Message): 'stopped' | 'failed' | null {
  const status = msg.response_metadata?.loom_status;
  return status === 'stopped' || status === 'failed' ? status : null;
}
