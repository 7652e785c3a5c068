import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { api, ApiError } from '../api/client';
import {
  applyPatches,
  cutShort,
  mergeUnconfirmed,
  pendingToolCalls,
  REJECTION_TEXT,
  stateMessages,
  toWire,
} from '../api/stream';
import type {
  Assistant,
  Message,
  MessageBranchInfo,
  RunInput,
  RunRequest,
  StoredFile,
  Thread,
  ToolCall,
} from '../api/types';
import type { IngestTarget } from '../api/upload';
import { fieldsFromSchema, usesFiles } from '../config/form';
import { loadConfigSchema } from '../config/schema';
import { uuid } from '../lib/ids';
import { linkClick, navigate, paths } from '../lib/router';
import { useApp } from '../state';
import { Approval } from './Approval';
import { Composer } from './Composer';
import { FileChips, type FileGroup } from './Files';
import { Icon } from './Icon';
import { MessageList, type MessageActions } from './MessageList';
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
/** How often an idle, visible chat checks whether a run started elsewhere (ms). */
const WATCH_MS = 8000;
/** Status code of a run's `error` event when it was stopped on purpose. */
const CANCELLED = 499;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = window.setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      window.clearTimeout(t);
      resolve();
    });
  });

/** What a run to follow is: a new one to start, or one already running (from its start or after an event). */
type Start = { kind: 'new'; body: RunRequest } | { kind: 'join'; runId: string };

interface Props {
  threadId?: string;
  assistantId?: string;
}

/**
 * A conversation. With `threadId` it shows that thread; with only `assistantId` it is a new
 * chat whose thread is created on the first message (the URL then becomes /t/:id without
 * remounting, so the stream keeps going). A run in progress on the thread (started by this
 * page before a reload, by another tab or device) is followed from wherever it is; a dropped
 * connection is resumed with Last-Event-ID.
 */
export function Chat({ threadId, assistantId }: Props) {
  const app = useApp();
  const [thread, setThread] = useState<Thread | null>(null);
  const [assistant, setAssistant] = useState<Assistant | null>(null);
  const [assistantError, setAssistantError] = useState<string | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [next, setNext] = useState<string[]>([]);
  const [info, setInfo] = useState<Map<string, MessageBranchInfo>>(new Map());
  const [threadFiles, setThreadFiles] = useState<StoredFile[]>([]);
  const [assistantFiles, setAssistantFiles] = useState<StoredFile[]>([]);
  const [readsFiles, setReadsFiles] = useState<boolean | null>(null);
  const [loading, setLoading] = useState(true);
  const [loadError, setLoadError] = useState<ApiError | Error | null>(null);
  const [streaming, setStreaming] = useState(false);
  const [reconnecting, setReconnecting] = useState(false);
  const [streamingId, setStreamingId] = useState<string | null>(null);
  const [streamError, setStreamError] = useState<string | null>(null);
  const [actionBusy, setActionBusy] = useState(false);
  const [announce, setAnnounce] = useState('');
  const upload = useUpload();

  const threadRef = useRef<string | null>(threadId ?? null);
  const createdRef = useRef<string | null>(null);
  const abortRef = useRef<AbortController | null>(null);
  const runIdRef = useRef<string | null>(null);
  const stoppingRef = useRef(false);
  const streamingRef = useRef(false);
  const lastInputRef = useRef<RunInput | null>(null);
  const queueRef = useRef<unknown[]>([]);
  const timerRef = useRef<number | null>(null);
  const mountedRef = useRef(true);
  const assistantIdRef = useRef<string | null>(null);
  const localTimes = useRef(new Map<string, string>());

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

  // The name as the sidebar knows it (a rename there shows here at once).
  const listed = app.threads?.find((t) => t.thread_id === thread?.thread_id);
  const title = listed?.name || thread?.name || assistant?.name || 'New chat';
  useEffect(() => {
    document.title = `${title} · Loom`;
    return () => {
      document.title = 'Loom';
    };
  }, [title]);

  /* ------------------------------ side data ------------------------------ */

  const loadBranches = useCallback(async (tid: string) => {
    try {
      const tree = await api.getBranches(tid);
      if (!mountedRef.current || threadRef.current !== tid) return null;
      const map = new Map(tree.messages.map((m) => [m.id, m]));
      setInfo(map);
      return map;
    } catch {
      return null; // times and versions are extras: the chat works without them
    }
  }, []);

  const loadFiles = useCallback(async (tid: string | null, aid: string | null, mineToo: boolean) => {
    const [t, a] = await Promise.all([
      tid ? api.threadFiles(tid).catch(() => [] as StoredFile[]) : Promise.resolve([] as StoredFile[]),
      aid && mineToo ? api.assistantFiles(aid).catch(() => [] as StoredFile[]) : Promise.resolve([] as StoredFile[]),
    ]);
    if (!mountedRef.current) return;
    if (tid === threadRef.current) setThreadFiles(t);
    setAssistantFiles(a);
  }, []);

  /* ------------------------------ streaming ------------------------------ */

  const flush = useCallback(() => {
    if (timerRef.current !== null) {
      window.clearTimeout(timerRef.current);
      timerRef.current = null;
    }
    const patches = queueRef.current;
    if (patches.length === 0) return;
    queueRef.current = [];
    const now = new Date().toISOString();
    for (const p of patches) {
      const id = (p as Record<string, unknown> | null)?.id;
      if (typeof id === 'string' && !localTimes.current.has(id)) localTimes.current.set(id, now);
    }
    setMessages((prev) => applyPatches(prev, patches));
  }, []);

  const enqueue = useCallback(
    (patches: unknown[]) => {
      queueRef.current.push(...patches);
      // The message being written is the last one a patch touched (not a human or tool message).
      for (let i = patches.length - 1; i >= 0; i--) {
        const p = patches[i] as Record<string, unknown> | null;
        if (p && typeof p.id === 'string' && (p.type === undefined || p.type === 'ai' || p.type === 'AIMessageChunk')) {
          if (p.removed !== true) setStreamingId(p.id);
          break;
        }
      }
      if (timerRef.current === null) timerRef.current = window.setTimeout(flush, FLUSH_MS);
    },
    [flush],
  );

  const refreshState = useCallback(async (tid: string, keep: 'pending' | 'none') => {
    try {
      const s = await api.getThreadState(tid);
      if (!mountedRef.current || threadRef.current !== tid) return null;
      const server = stateMessages(s);
      setMessages((prev) => (keep === 'none' ? server : mergeUnconfirmed(server, prev)));
      const nextNow = Array.isArray(s.next) ? s.next : [];
      setNext(nextNow);
      return { next: nextNow, messages: server };
    } catch {
      return null; // keep what is on screen
    }
  }, []);

  /**
   * Follow a run to its end: start it (POST /runs/stream) or join it (GET /runs/{id}/stream),
   * and when the connection drops, reconnect after the last event seen (Last-Event-ID).
   */
  const follow = useCallback(
    async (tid: string, start: Start) => {
      if (streamingRef.current) return;
      const controller = new AbortController();
      abortRef.current = controller;
      streamingRef.current = true;
      stoppingRef.current = false;
      runIdRef.current = start.kind === 'join' ? start.runId : null;
      setStreamError(null);
      setStreaming(true);
      setReconnecting(false);
      setStreamingId(null);
      setAnnounce('The assistant is replying…');
      let failure: string | null = null;
      let stopped = false;
      let lastId: string | undefined;
      let ended = false;
      let first = true;
      let attempt = 0;
      while (!ended && !controller.signal.aborted) {
        const fresh = first && start.kind === 'new';
        try {
          const events =
            fresh && start.kind === 'new'
              ? api.streamRun(start.body, controller.signal)
              : api.joinRun(runIdRef.current ?? '', lastId, controller.signal);
          first = false;
          for await (const ev of events) {
            if (attempt > 0) {
              attempt = 0;
              setReconnecting(false);
            }
            if (ev.id !== undefined) lastId = ev.id;
            if (ev.type === 'metadata') runIdRef.current = ev.run_id;
            else if (ev.type === 'data') enqueue(ev.payload);
            else if (ev.type === 'error') {
              if (ev.status_code === CANCELLED) stopped = true;
              else failure = ev.message || 'The run failed.';
            } else if (ev.type === 'end') {
              ended = true;
              break;
            }
          }
          if (!ended) throw new ApiError(0, 'The connection closed before the reply ended.');
        } catch (err) {
          if (controller.signal.aborted) break;
          const http = err instanceof ApiError && err.status > 0;
          if (http && fresh && (err as ApiError).status === 409) {
            // Busy: a run started elsewhere. The message was not sent; follow that run.
            failure = 'Your message was not sent: a reply was still being written. Send it again when it ends.';
            const active = await api.activeRuns(tid).catch(() => []);
            if (!active[0]) break;
            runIdRef.current = active[0].run_id;
            continue;
          }
          if (http) {
            // A join answering 404: the run ended and its log is gone; the state has it all.
            if (!(fresh || (err as ApiError).status !== 404)) ended = true;
            else failure = errorText(err);
            break;
          }
          if (!runIdRef.current) {
            // Cut before the run was named: find it (or give up).
            const active = await api.activeRuns(tid).catch(() => null);
            if (active === null || !active[0]) {
              failure = errorText(err);
              break;
            }
            runIdRef.current = active[0].run_id;
          }
          attempt += 1;
          setReconnecting(true);
          await sleep(Math.min(400 * 2 ** (attempt - 1), 5000), controller.signal);
        }
      }
      const aborted = controller.signal.aborted;
      // Another thread may be on screen (and following its own run) by now: leave it alone.
      const current = abortRef.current === controller || abortRef.current === null;
      if (!current) return;
      abortRef.current = null;
      if (threadRef.current === tid) flush();
      streamingRef.current = false;
      runIdRef.current = null;
      if (mountedRef.current) {
        setStreaming(false);
        setReconnecting(false);
        setStreamingId(null);
      }
      if (!mountedRef.current || threadRef.current !== tid) return;
      if (aborted && !stoppingRef.current) return; // left the thread
      await refreshState(tid, failure ? 'pending' : 'none');
      void loadBranches(tid);
      if (failure) {
        setStreamError(failure);
        setAnnounce(`Error: ${failure}`);
      } else {
        setAnnounce(stopped || stoppingRef.current ? 'Stopped.' : 'The assistant has replied.');
      }
      stoppingRef.current = false;
      void app.reloadThreads();
      // Queued runs (enqueue strategy) may follow: keep up with them.
      const more = await api.activeRuns(tid).catch(() => []);
      if (more[0] && mountedRef.current && threadRef.current === tid) void follow(tid, { kind: 'join', runId: more[0].run_id });
    },
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [app, enqueue, flush, refreshState, loadBranches],
  );

  const run = useCallback(
    (tid: string, input: RunInput | null, checkpointId?: string | null) => {
      const body: RunRequest = {
        thread_id: tid,
        input,
        ...(assistantIdRef.current ? { assistant_id: assistantIdRef.current } : {}),
        ...(checkpointId ? { config: { configurable: { checkpoint_id: checkpointId } } } : {}),
      };
      return follow(tid, { kind: 'new', body });
    },
    [follow],
  );

  /** Join the thread's run in progress, if it has one. */
  const watch = useCallback(
    async (tid: string) => {
      if (streamingRef.current) return;
      const active = await api.activeRuns(tid).catch(() => []);
      if (active[0] && !streamingRef.current && threadRef.current === tid && mountedRef.current) {
        await refreshState(tid, 'pending');
        void follow(tid, { kind: 'join', runId: active[0].run_id });
      }
    },
    [follow, refreshState],
  );

  /* ------------------------------ loading ------------------------------ */

  useEffect(() => {
    if (threadId && threadId === createdRef.current) return; // created here: already on screen
    abortRef.current?.abort();
    streamingRef.current = false;
    queueRef.current = [];
    if (timerRef.current !== null) {
      window.clearTimeout(timerRef.current);
      timerRef.current = null;
    }
    createdRef.current = null;
    threadRef.current = threadId ?? null;
    lastInputRef.current = null;
    localTimes.current = new Map();
    setThread(null);
    setMessages([]);
    setNext([]);
    setInfo(new Map());
    setThreadFiles([]);
    setAssistantFiles([]);
    setStreaming(false);
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
          const [t, s, active] = await Promise.all([
            api.getThread(threadId),
            api.getThreadState(threadId),
            api.activeRuns(threadId).catch(() => []),
          ]);
          if (cancelled) return;
          setThread(t);
          setMessages(stateMessages(s));
          setNext(Array.isArray(s.next) ? s.next : []);
          assistantIdRef.current = t.assistant_id;
          void loadBranches(threadId);
          if (active[0]) void follow(threadId, { kind: 'join', runId: active[0].run_id });
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
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [threadId, assistantId]);

  const mine = assistant ? app.isMine(assistant) : false;
  const aid = assistant?.assistant_id ?? null;
  useEffect(() => {
    void loadFiles(threadRef.current, aid, mine);
  }, [aid, mine, thread?.thread_id, loadFiles]);

  // Whether the assistant can read uploaded files (from the config schema).
  useEffect(() => {
    if (!assistant) return setReadsFiles(null);
    let live = true;
    loadConfigSchema()
      .then((schema) => live && setReadsFiles(usesFiles(assistant.config, fieldsFromSchema(schema))))
      .catch(() => live && setReadsFiles(null));
    return () => {
      live = false;
    };
  }, [assistant]);

  // A run started elsewhere (another tab or device) shows up here too.
  const currentThread = thread?.thread_id ?? null;
  useEffect(() => {
    if (!currentThread) return;
    const check = () => {
      if (document.visibilityState === 'visible') void watch(currentThread);
    };
    const timer = window.setInterval(check, WATCH_MS);
    window.addEventListener('focus', check);
    document.addEventListener('visibilitychange', check);
    return () => {
      window.clearInterval(timer);
      window.removeEventListener('focus', check);
      document.removeEventListener('visibilitychange', check);
    };
  }, [currentThread, watch]);

  /* ------------------------------ sending and stopping ------------------------------ */

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
    localTimes.current.set(msg.id, new Date().toISOString());
    setMessages((prev) => [...prev, msg]);
    const input: RunInput = { messages: [toWire(msg)] };
    lastInputRef.current = input;
    void run(tid, input);
    return true;
  };

  const stop = useCallback(() => {
    if (!streamingRef.current) return;
    stoppingRef.current = true;
    const rid = runIdRef.current;
    const controller = abortRef.current;
    if (!rid) {
      controller?.abort();
      return;
    }
    // The server keeps what was written (marked stopped) and ends the stream.
    api.cancelRun(rid).catch(() => controller?.abort());
    window.setTimeout(() => {
      if (abortRef.current === controller) controller?.abort();
    }, 8000);
  }, []);

  // Esc stops a reply.
  useEffect(() => {
    if (!streaming) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape' && !e.defaultPrevented) stop();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [streaming, stop]);

  const messagesRef = useRef(messages);
  messagesRef.current = messages;
  const infoRef = useRef(info);
  infoRef.current = info;

  const retry = async () => {
    const tid = threadRef.current;
    if (!tid || streaming) return;
    setStreamError(null);
    const now = await refreshState(tid, 'pending');
    const nextNow = now?.next ?? next;
    const list = now?.messages ?? messagesRef.current;
    // A reply cut short by the failure: run again from the checkpoint before it.
    const last = list[list.length - 1];
    if (last && last.type === 'ai' && cutShort(last)) {
      const fresh = (await loadBranches(tid)) ?? infoRef.current;
      const fork = firstReplyFork(list, fresh, last.id);
      if (fork) return void run(tid, null, fork);
    }
    // A failed step is still pending in the checkpoint: continue it. Otherwise send the same
    // input again; it has the same message id, so the server merges instead of duplicating.
    if (nextNow.length > 0 || !lastInputRef.current) void run(tid, null);
    else void run(tid, lastInputRef.current);
  };

  const actions: MessageActions = useMemo(
    () => ({
      onRegenerate: (firstReplyId) => {
        const tid = threadRef.current;
        const fork = infoRef.current.get(firstReplyId)?.fork_from;
        if (!tid || !fork || streamingRef.current) return;
        lastInputRef.current = null;
        const at = messagesRef.current.findIndex((m) => m.id === firstReplyId);
        if (at >= 0) setMessages((prev) => prev.slice(0, at));
        void run(tid, null, fork);
      },
      onEdit: (messageId, text) => {
        const tid = threadRef.current;
        const fork = infoRef.current.get(messageId)?.fork_from;
        if (!tid || !fork || streamingRef.current) return;
        const msg: Message = { id: uuid(), type: 'human', content: text, pending: true };
        localTimes.current.set(msg.id, new Date().toISOString());
        const at = messagesRef.current.findIndex((m) => m.id === messageId);
        setMessages((prev) => [...(at >= 0 ? prev.slice(0, at) : prev), msg]);
        const input: RunInput = { messages: [toWire(msg)] };
        lastInputRef.current = input;
        void run(tid, input, fork);
      },
      onSwitch: (checkpointId) => {
        const tid = threadRef.current;
        if (!tid || streamingRef.current) return;
        setActionBusy(true);
        api
          .switchBranch(tid, checkpointId)
          .then(async (s) => {
            if (threadRef.current !== tid) return;
            setMessages(stateMessages(s));
            setNext(Array.isArray(s.next) ? s.next : []);
            setStreamError(null);
            await loadBranches(tid);
            setAnnounce('Showing another version.');
          })
          .catch((err: unknown) => setStreamError(errorText(err)))
          .finally(() => setActionBusy(false));
      },
      onContinue: () => void send('Continue from where you stopped.'),
    }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [run, loadBranches],
  );

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
      void run(tid, null);
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

  /* ------------------------------ files ------------------------------ */

  const attach = async (files: File[]) => {
    let target: IngestTarget;
    let tid: string | null;
    try {
      tid = await ensureThread(threadNameFor(files.map((f) => f.name).join(', ')));
      if (!tid) return;
      target = { thread_id: tid };
    } catch (err) {
      setStreamError(errorText(err));
      return;
    }
    if (await upload.start(files, target)) void loadFiles(tid, aid, mine);
  };

  const fileGroups: FileGroup[] = [
    {
      owner: 'thread',
      files: threadFiles,
      onDelete: async (name) => {
        const tid = threadRef.current;
        if (!tid) return;
        await api.deleteThreadFile(tid, name);
        setThreadFiles((list) => list.filter((f) => f.filename !== name));
      },
    },
    ...(mine && aid
      ? [
          {
            owner: 'assistant' as const,
            files: assistantFiles,
            onDelete: async (name: string) => {
              await api.deleteAssistantFile(aid, name);
              setAssistantFiles((list) => list.filter((f) => f.filename !== name));
            },
          },
        ]
      : []),
  ];
  const hasFiles = threadFiles.length + assistantFiles.length > 0 || upload.state?.status === 'done';

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

      <MessageList
        messages={messages}
        streamingId={streaming ? streamingId : null}
        busy={streaming || actionBusy}
        info={info}
        localTimes={localTimes.current}
        actions={actions}
      >
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
            <button type="button" className="small" onClick={() => threadRef.current && void run(threadRef.current, null)}>
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
        {reconnecting && (
          <p className="reconnecting" role="status" data-testid="reconnecting">
            <span className="dot" aria-hidden="true" /> Connection lost, reconnecting…
          </p>
        )}
        {hasFiles && readsFiles === false && (
          <p className="notice small files-warning" role="note" data-testid="files-warning">
            {assistant?.name ?? 'This assistant'} cannot read files: it has no Retrieval tool.{' '}
            {mine && assistant ? (
              <a href={paths.editAssistant(assistant.assistant_id)} onClick={linkClick(paths.editAssistant(assistant.assistant_id))}>
                Add it on the assistant’s page
              </a>
            ) : (
              'Ask its owner to add it.'
            )}
          </p>
        )}
        <FileChips groups={fileGroups} label="Files" />
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

/** The fork point of the turn whose answer is `answerId` (the checkpoint before its first reply). */
function firstReplyFork(messages: readonly Message[], info: ReadonlyMap<string, MessageBranchInfo>, answerId: string): string | null {
  const at = messages.findIndex((m) => m.id === answerId);
  for (let i = at; i > 0; i--) {
    if (messages[i - 1]!.type === 'human') return info.get(messages[i]!.id)?.fork_from ?? null;
  }
  return null;
}
