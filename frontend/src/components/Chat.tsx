import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, ApiError } from '../api/client';
import {
  applyPatches,
  mergeUnconfirmed,
  pendingToolCalls,
  REJECTION_TEXT,
  stateMessages,
  toWire,
} from '../api/stream';
import type { Assistant, Message, RunInput, Thread, ToolCall } from '../api/types';
import type { IngestTarget } from '../api/upload';
import { uuid } from '../lib/ids';
import { linkClick, navigate, paths } from '../lib/router';
import { useApp } from '../state';
import { Approval } from './Approval';
import { Composer } from './Composer';
import { Icon } from './Icon';
import { MessageList } from './MessageList';
import { ShareLink } from './ShareLink';
import { DropZone, UploadStatus, useUpload } from './Upload';

function threadNameFor(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}…` : line || 'New chat';
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

/** How often streamed patches are applied to the screen (ms). */
const FLUSH_MS = 24;

interface Props {
  threadId?: string;
  assistantId?: string;
}

/**
 * A conversation. With `threadId` it shows that thread; with only `assistantId` it is a new
 * chat whose thread is created on the first message (the URL then becomes /t/:id without
 * remounting, so the stream keeps going).
 */
export function Chat({ threadId, assistantId }: Props) {
  const app = useApp();
  const [thread, setThread] = useState<Thread | null>(null);
  const [assistant, setAssistant] = useState<Assistant | null>(null);
  const [assistantError, setAssistantError] = useState<string | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [next, setNext] = useState<string[]>([]);
  const [loading, setLoading] = useState(true);
  const [loadError, setLoadError] = useState<ApiError | Error | null>(null);
  const [streaming, setStreaming] = useState(false);
  const [streamingId, setStreamingId] = useState<string | null>(null);
  const [streamError, setStreamError] = useState<string | null>(null);
  const [actionBusy, setActionBusy] = useState(false);
  const [announce, setAnnounce] = useState('');
  const upload = useUpload();

  const threadRef = useRef<string | null>(threadId ?? null);
  const createdRef = useRef<string | null>(null);
  const abortRef = useRef<AbortController | null>(null);
  const runIdRef = useRef<string | null>(null);
  const lastInputRef = useRef<RunInput | null>(null);
  const queueRef = useRef<unknown[]>([]);
  const timerRef = useRef<number | null>(null);
  const mountedRef = useRef(true);
  const assistantIdRef = useRef<string | null>(null);

  useEffect(() => {
    mountedRef.current = true;
    return () => {
      mountedRef.current = false;
      abortRef.current?.abort();
      if (timerRef.current !== null) window.clearTimeout(timerRef.current);
    };
  }, []);

  const { setActiveAssistantId } = app;
  useEffect(() => {
    setActiveAssistantId(assistant?.assistant_id ?? thread?.assistant_id ?? assistantId ?? null);
  }, [assistant, thread, assistantId, setActiveAssistantId]);

  /* ------------------------------ loading ------------------------------ */

  useEffect(() => {
    if (threadId && threadId === createdRef.current) return; // created here: already on screen
    abortRef.current?.abort();
    queueRef.current = [];
    if (timerRef.current !== null) {
      window.clearTimeout(timerRef.current);
      timerRef.current = null;
    }
    createdRef.current = null;
    threadRef.current = threadId ?? null;
    lastInputRef.current = null;
    setThread(null);
    setMessages([]);
    setNext([]);
    setStreamError(null);
    setLoadError(null);
    setAssistantError(null);
    setLoading(true);
    upload.dismiss();
    let cancelled = false;

    const loadAssistant = async (id: string, fatal: boolean) => {
      try {
        const a = await api.getAssistant(id);
        if (cancelled) return;
        setAssistant(a);
        assistantIdRef.current = a.assistant_id;
      } catch (err) {
        if (cancelled) return;
        setAssistant(null);
        if (fatal) throw err;
        setAssistantError(errorText(err));
      }
    };

    (async () => {
      try {
        if (threadId) {
          const [t, s] = await Promise.all([api.getThread(threadId), api.getThreadState(threadId)]);
          if (cancelled) return;
          setThread(t);
          setMessages(stateMessages(s));
          setNext(Array.isArray(s.next) ? s.next : []);
          assistantIdRef.current = t.assistant_id;
          if (t.assistant_id) await loadAssistant(t.assistant_id, false);
          else setAssistant(null);
        } else if (assistantId) {
          assistantIdRef.current = assistantId;
          await loadAssistant(assistantId, true);
        }
      } catch (err) {
        if (!cancelled) setLoadError(err instanceof Error ? err : new Error(String(err)));
      } finally {
        if (!cancelled) setLoading(false);
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [threadId, assistantId]);

  /* ------------------------------ streaming ------------------------------ */

  const flush = useCallback(() => {
    if (timerRef.current !== null) {
      window.clearTimeout(timerRef.current);
      timerRef.current = null;
    }
    const patches = queueRef.current;
    if (patches.length === 0) return;
    queueRef.current = [];
    setMessages((prev) => applyPatches(prev, patches));
  }, []);

  const enqueue = useCallback(
    (patches: unknown[]) => {
      queueRef.current.push(...patches);
      // The message being written is the last one a patch touched (not a human or tool message).
      for (let i = patches.length - 1; i >= 0; i--) {
        const p = patches[i] as Record<string, unknown> | null;
        if (p && typeof p.id === 'string' && (p.type === undefined || p.type === 'ai' || p.type === 'AIMessageChunk')) {
          setStreamingId(p.id);
          break;
        }
      }
      if (timerRef.current === null) timerRef.current = window.setTimeout(flush, FLUSH_MS);
    },
    [flush],
  );

  const refreshState = useCallback(async (tid: string, keep: 'pending' | 'all' | 'none') => {
    try {
      const s = await api.getThreadState(tid);
      if (!mountedRef.current || threadRef.current !== tid) return null;
      const server = stateMessages(s);
      setMessages((prev) => (keep === 'none' ? server : mergeUnconfirmed(server, prev, keep === 'all')));
      const nextNow = Array.isArray(s.next) ? s.next : [];
      setNext(nextNow);
      return nextNow;
    } catch {
      return null; // keep what is on screen
    }
  }, []);

  const runStream = useCallback(
    async (tid: string, input: RunInput | null) => {
      const controller = new AbortController();
      abortRef.current = controller;
      runIdRef.current = null;
      setStreamError(null);
      setStreaming(true);
      setStreamingId(null);
      setAnnounce('The assistant is replying…');
      let failure: string | null = null;
      try {
        const body = { thread_id: tid, input, ...(assistantIdRef.current ? { assistant_id: assistantIdRef.current } : {}) };
        for await (const ev of api.streamRun(body, controller.signal)) {
          if (ev.type === 'metadata') runIdRef.current = ev.run_id;
          else if (ev.type === 'data') enqueue(ev.payload);
          else if (ev.type === 'error') failure = ev.message || 'The run failed.';
          else if (ev.type === 'end') break;
        }
      } catch (err) {
        if (!controller.signal.aborted) failure = errorText(err);
      } finally {
        if (threadRef.current === tid) flush();
        if (abortRef.current === controller) abortRef.current = null;
        if (mountedRef.current) {
          setStreaming(false);
          setStreamingId(null);
        }
      }
      if (!mountedRef.current || threadRef.current !== tid) return;
      const stopped = controller.signal.aborted;
      await refreshState(tid, failure ? 'pending' : stopped ? 'all' : 'none');
      if (failure) {
        setStreamError(failure);
        setAnnounce(`Error: ${failure}`);
      } else {
        setAnnounce(stopped ? 'Stopped.' : 'The assistant has replied.');
      }
      void app.reloadThreads();
    },
    [app, enqueue, flush, refreshState],
  );

  const ensureThread = async (name: string): Promise<string | null> => {
    if (threadRef.current) return threadRef.current;
    const aid = assistant?.assistant_id;
    if (!aid) return null;
    const t = await api.createThread({ name, assistant_id: aid });
    threadRef.current = t.thread_id;
    createdRef.current = t.thread_id;
    setThread(t);
    app.upsertThread(t);
    navigate(paths.thread(t.thread_id));
    return t.thread_id;
  };

  const send = async (text: string): Promise<boolean> => {
    const content = text.trim();
    if (!content || streaming) return false;
    const msg: Message = { id: uuid(), type: 'human', content, pending: true };
    let tid: string | null;
    try {
      tid = await ensureThread(threadNameFor(content));
    } catch (err) {
      setStreamError(errorText(err));
      return false;
    }
    if (!tid) return false;
    setMessages((prev) => [...prev, msg]);
    const input: RunInput = { messages: [toWire(msg)] };
    lastInputRef.current = input;
    void runStream(tid, input);
    return true;
  };

  const stop = () => {
    const rid = runIdRef.current;
    if (rid) api.cancelRun(rid).catch(() => undefined);
    abortRef.current?.abort();
  };

  const retry = async () => {
    const tid = threadRef.current;
    if (!tid || streaming) return;
    setStreamError(null);
    const nextNow = (await refreshState(tid, 'pending')) ?? next;
    // A failed step is still pending in the checkpoint: continue it. Otherwise send the same
    // input again; it has the same message id, so the server merges instead of duplicating.
    if (nextNow.length > 0 || !lastInputRef.current) void runStream(tid, null);
    else void runStream(tid, lastInputRef.current);
  };

  /* ------------------------------ approval ------------------------------ */

  const pending = useMemo(
    () => (streaming ? null : pendingToolCalls(messages, next)),
    [messages, next, streaming],
  );

  const withAction = async (work: (tid: string) => Promise<void>) => {
    const tid = threadRef.current;
    if (!tid) return;
    setActionBusy(true);
    setStreamError(null);
    try {
      await work(tid);
      lastInputRef.current = null;
      void runStream(tid, null);
    } catch (err) {
      setStreamError(errorText(err));
    } finally {
      setActionBusy(false);
    }
  };

  const approve = () => withAction(async () => undefined);

  const editAndRun = (edited: ToolCall[]) =>
    withAction(async (tid) => {
      if (!pending) return;
      const original = pending.message;
      const byId = new Map(edited.map((c) => [c.id, c]));
      const toolCalls = (original.tool_calls ?? []).map((c) => {
        const e = byId.get(c.id);
        return e ? { ...c, args: e.args } : c;
      });
      const updated: Message = { ...toWire(original), tool_calls: toolCalls };
      // Keep OpenAI's raw copy of the calls in step, if the message has one.
      const raw = original.additional_kwargs?.tool_calls;
      if (Array.isArray(raw)) {
        updated.additional_kwargs = {
          ...original.additional_kwargs,
          tool_calls: raw.map((r: Record<string, unknown>) => {
            const e = typeof r?.id === 'string' ? byId.get(r.id) : undefined;
            const fn = (r?.function ?? {}) as Record<string, unknown>;
            return e ? { ...r, function: { ...fn, arguments: JSON.stringify(e.args) } } : r;
          }),
        };
      }
      await api.updateThreadState(tid, [updated]);
      setMessages((prev) => prev.map((m) => (m.id === updated.id ? updated : m)));
    });

  const reject = () =>
    withAction(async (tid) => {
      if (!pending) return;
      const replies: Message[] = pending.calls.map((c) => ({
        id: uuid(),
        type: 'tool',
        content: REJECTION_TEXT,
        tool_call_id: c.id,
        name: c.name,
      }));
      await api.updateThreadState(tid, replies);
      setMessages((prev) => [...prev, ...replies]);
    });

  /* ------------------------------ upload ------------------------------ */

  const attach = async (files: File[]) => {
    let target: IngestTarget;
    try {
      const tid = await ensureThread(threadNameFor(files.map((f) => f.name).join(', ')));
      if (!tid) return;
      target = { thread_id: tid };
    } catch (err) {
      setStreamError(errorText(err));
      return;
    }
    await upload.start(files, target);
  };

  /* ------------------------------ render ------------------------------ */

  if (loading) {
    return (
      <div className="page" role="status">
        Loading…
      </div>
    );
  }
  if (loadError) {
    const notFound = loadError instanceof ApiError && (loadError.status === 404 || loadError.status === 403);
    return (
      <div className="page" data-testid="chat-error">
        <h1>{notFound ? 'Not found' : 'Could not load this chat'}</h1>
        <p className="error" role="alert">
          {notFound
            ? threadId
              ? 'This chat does not exist, or it belongs to someone else.'
              : 'This assistant does not exist, or it is private.'
            : loadError.message}
        </p>
        <a href="/" onClick={linkClick('/')}>
          Go home
        </a>
      </div>
    );
  }

  const title = thread?.name || assistant?.name || 'New chat';
  const mine = assistant ? app.isMine(assistant) : false;
  const interrupted = !streaming && !pending && next.length > 0 && !streamError && messages.length > 0;
  const canSend = Boolean(threadRef.current || assistant);
  const disabledReason = pending
    ? 'Approve or reject the tool call above first.'
    : !canSend
      ? 'This chat has no assistant.'
      : null;

  return (
    <DropZone
      className="chat"
      onFiles={(files) => void attach(files)}
      label="Drop files to add them to this chat"
      disabled={upload.busy || !canSend}
    >
      <div className="chat-head">
        <div className="chat-title">
          <h1 data-testid="chat-title">{title}</h1>
          {assistant && (
            <span className="muted small" data-testid="chat-assistant">
              with {assistant.name}
            </span>
          )}
        </div>
        <div className="head-actions">
          {assistant && mine && (
            <a
              className="button small"
              href={paths.editAssistant(assistant.assistant_id)}
              onClick={linkClick(paths.editAssistant(assistant.assistant_id))}
            >
              <Icon name="edit" size={15} /> Edit assistant
            </a>
          )}
          {assistant?.public && <ShareLink assistantId={assistant.assistant_id} />}
        </div>
      </div>
      {assistantError && (
        <p className="notice small" role="status">
          The assistant of this chat could not be loaded ({assistantError}).
        </p>
      )}

      <MessageList messages={messages} streamingId={streaming ? streamingId : null}>
        {messages.length === 0 && !streaming && (
          <div className="empty-chat" data-testid="empty-chat">
            <Icon name="chat" size={28} />
            <p>{assistant ? `Start a conversation with ${assistant.name}.` : 'No messages yet.'}</p>
          </div>
        )}
        {streaming && streamingId === null && (
          <div className="msg msg-ai" data-testid="waiting">
            <span className="typing" role="status" aria-label="Waiting for the assistant">
              <span />
              <span />
              <span />
            </span>
          </div>
        )}
        {pending && (
          <Approval
            key={pending.message.id + pending.calls.map((c) => c.id).join()}
            calls={pending.calls}
            busy={actionBusy || streaming}
            onApprove={() => void approve()}
            onEdit={(calls) => void editAndRun(calls)}
            onReject={() => void reject()}
          />
        )}
        {interrupted && (
          <div className="notice interrupted" data-testid="interrupted">
            <span>The last run did not finish.</span>
            <button type="button" className="small" onClick={() => threadRef.current && void runStream(threadRef.current, null)}>
              Continue
            </button>
          </div>
        )}
        {streamError && (
          <div className="stream-error" role="alert" data-testid="stream-error">
            <span>{streamError}</span>
            <button type="button" className="small" onClick={() => void retry()} data-testid="retry-button" disabled={!threadRef.current}>
              Retry
            </button>
          </div>
        )}
      </MessageList>

      <div className="chat-foot">
        <UploadStatus state={upload.state} onCancel={upload.cancel} onDismiss={upload.dismiss} />
        <Composer
          streaming={streaming}
          disabled={Boolean(pending) || !canSend || actionBusy}
          disabledReason={disabledReason}
          placeholder={assistant ? `Message ${assistant.name}…` : 'Send a message…'}
          onSend={send}
          onStop={stop}
          onAttach={(files) => void attach(files)}
          attachDisabled={upload.busy || !canSend}
          autoFocus={!threadId}
        />
      </div>
      <div className="sr-only" aria-live="polite" data-testid="live-status">
        {announce}
      </div>
    </DropZone>
  );
}
