import { memo, useEffect, useId, useLayoutEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import {
  contentText,
  cutShort,
  REJECTION_TEXT,
  toolCallsOf,
  turnsByAnswer,
  type Passage,
  type Turn,
} from '../api/stream';
import type { BranchSibling, Message, MessageBranchInfo, ToolCall } from '../api/types';
import { fullTime, shortTime } from '../lib/time';
import { Icon } from './Icon';
import { Markdown } from './Markdown';

function shortJson(value: unknown, max = 80): string {
  let s: string;
  try {
    s = JSON.stringify(value);
  } catch {
    s = String(value);
  }
  if (s === undefined) return '';
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function prettyContent(text: string): string {
  const t = text.trim();
  if ((t.startsWith('{') && t.endsWith('}')) || (t.startsWith('[') && t.endsWith(']'))) {
    try {
      return JSON.stringify(JSON.parse(t), null, 2);
    } catch {
      /* not JSON */
    }
  }
  return text;
}

function passageLabel(p: Passage): string {
  return p.page !== null ? `${p.filename}, page ${p.page}` : p.filename;
}

export function ToolCallView({ call }: { call: ToolCall }) {
  return (
    <details className="tool-call" data-testid="tool-call" data-tool-name={call.name}>
      <summary>
        <Icon name="tool" size={15} />
        <span>
          Used <code>{call.name}</code>
        </span>
        <span className="preview">{shortJson(call.args)}</span>
      </summary>
      <pre className="mono">{JSON.stringify(call.args, null, 2)}</pre>
    </details>
  );
}

function ToolResultView({ message, toolName }: { message: Message; toolName: string }) {
  const text = contentText(message.content);
  const failed = message.status === 'error';
  const rejected = text === REJECTION_TEXT;
  const passages = Array.isArray(message.artifact) && toolName === 'retrieval' ? (message.artifact as unknown[]) : null;
  if (passages && !failed) {
    const names = [...new Set(passages.map((p) => String((p as Record<string, unknown>)?.filename ?? 'document')))];
    return (
      <details className="tool-result" data-testid="tool-result" data-message-id={message.id}>
        <summary>
          <Icon name="search" size={15} />
          <span>
            Searched the files: {passages.length} passage{passages.length === 1 ? '' : 's'}
            {names.length > 0 ? ` from ${names.join(', ')}` : ''}
          </span>
        </summary>
        <pre className="mono">{text || '(empty)'}</pre>
      </details>
    );
  }
  return (
    <details
      className={`tool-result${failed ? ' failed' : ''}${rejected ? ' rejected' : ''}`}
      data-testid="tool-result"
      data-message-id={message.id}
    >
      <summary>
        <Icon name={rejected ? 'close' : 'check'} size={15} />
        <span>
          {rejected ? 'You rejected' : failed ? 'Error from' : 'Result from'} <code>{toolName}</code>
        </span>
        <span className="preview">{text.replace(/\s+/g, ' ').slice(0, 90)}</span>
      </summary>
      <pre className="mono">{prettyContent(text) || '(empty)'}</pre>
    </details>
  );
}

function Citations({ passages }: { passages: Passage[] }) {
  const titleId = useId();
  return (
    <section className="citations" aria-labelledby={titleId} data-testid="citations">
      <h3 id={titleId}>Sources</h3>
      <ol>
        {passages.map((p, i) => (
          <li key={i} data-testid="citation" data-filename={p.filename}>
            <details>
              <summary>
                <span className="citation-number">[{i + 1}]</span> <Icon name="file" size={13} />{' '}
                <span className="citation-file">{passageLabel(p)}</span>
                <span className="preview">{p.text.replace(/\s+/g, ' ').slice(0, 80)}</span>
              </summary>
              <blockquote className="citation-text" data-testid="citation-text">
                {p.text}
              </blockquote>
            </details>
          </li>
        ))}
      </ol>
    </section>
  );
}

function CopyButton({ text }: { text: string }) {
  const [label, setLabel] = useState<'Copy' | 'Copied' | 'Copy failed'>('Copy');
  const timer = useRef<number | null>(null);
  useEffect(() => () => void (timer.current !== null && window.clearTimeout(timer.current)), []);
  const done = (l: typeof label) => {
    setLabel(l);
    if (timer.current !== null) window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => setLabel('Copy'), 1500);
  };
  return (
    <button
      type="button"
      className="icon-button tiny"
      data-testid="copy-message"
      aria-label={label === 'Copy' ? 'Copy message' : label}
      title={label}
      onClick={() => {
        if (!navigator.clipboard?.writeText) return done('Copy failed');
        navigator.clipboard.writeText(text).then(
          () => done('Copied'),
          () => done('Copy failed'),
        );
      }}
    >
      <Icon name={label === 'Copied' ? 'check' : 'copy'} size={14} />
    </button>
  );
}

function Switcher({
  siblings,
  current,
  disabled,
  onSwitch,
}: {
  siblings: BranchSibling[];
  current: string;
  disabled: boolean;
  onSwitch(checkpointId: string): void;
}) {
  const at = siblings.findIndex((s) => s.message_id === current);
  if (at === -1) return null;
  const prev = siblings[at - 1];
  const next = siblings[at + 1];
  return (
    <span className="branch-switcher" data-testid="branch-switcher" role="group" aria-label="Versions">
      <button
        type="button"
        className="icon-button tiny"
        aria-label="Previous version"
        data-testid="branch-prev"
        disabled={disabled || !prev}
        onClick={() => prev && onSwitch(prev.checkpoint_id)}
      >
        <Icon name="left" size={14} />
      </button>
      <span data-testid="branch-position">
        {at + 1}/{siblings.length}
      </span>
      <button
        type="button"
        className="icon-button tiny"
        aria-label="Next version"
        data-testid="branch-next"
        disabled={disabled || !next}
        onClick={() => next && onSwitch(next.checkpoint_id)}
      >
        <Icon name="right" size={14} />
      </button>
    </span>
  );
}

function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return null;
  return (
    <time className="msg-time" dateTime={iso} title={fullTime(iso)} data-testid="message-time">
      {shortTime(iso)}
    </time>
  );
}

export interface MessageActions {
  /** Fork before the reply of a turn (its first message after the human one). */
  onRegenerate(firstReplyId: string): void;
  onEdit(messageId: string, text: string): void;
  onSwitch(checkpointId: string): void;
  onContinue(): void;
}

interface ItemProps {
  message: Message;
  toolName: string;
  streaming: boolean;
  busy: boolean;
  info: MessageBranchInfo | undefined;
  time: string | null | undefined;
  turn: Turn | undefined;
  turnInfo: MessageBranchInfo | undefined;
  last: boolean;
  actions: MessageActions;
}

function EditForm({ initial, onCancel, onSave }: { initial: string; onCancel(): void; onSave(text: string): void }) {
  const [draft, setDraft] = useState(initial);
  const id = useId();
  return (
    <form
      className="edit-form"
      data-testid="edit-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (draft.trim()) onSave(draft.trim());
      }}
    >
      <label htmlFor={id} className="sr-only">
        Edit your message
      </label>
      <textarea
        id={id}
        data-testid="edit-input"
        value={draft}
        rows={Math.min(8, Math.max(2, draft.split('\n').length))}
        autoFocus
        onChange={(e) => setDraft(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Escape') {
            e.stopPropagation();
            onCancel();
          } else if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
            e.preventDefault();
            if (draft.trim()) onSave(draft.trim());
          }
        }}
      />
      <div className="edit-actions">
        <button type="submit" className="primary small" data-testid="edit-save" disabled={!draft.trim()}>
          Save and send
        </button>
        <button type="button" className="small" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

const MessageItem = memo(function MessageItem({
  message,
  toolName,
  streaming,
  busy,
  info,
  time,
  turn,
  turnInfo,
  last,
  actions,
}: ItemProps) {
  const [editing, setEditing] = useState(false);
  const text = contentText(message.content);
  const common = {
    'data-testid': 'message',
    'data-type': message.type,
    'data-message-id': message.id,
    'data-streaming': streaming ? 'true' : undefined,
  };
  switch (message.type) {
    case 'human':
      return (
        <article className="msg msg-human" aria-label="You" {...common}>
          {editing ? (
            <EditForm
              initial={text}
              onCancel={() => setEditing(false)}
              onSave={(t) => {
                setEditing(false);
                actions.onEdit(message.id, t);
              }}
            />
          ) : (
            <div className="bubble">{text}</div>
          )}
          {!editing && (
            <div className="msg-actions">
              <Time iso={time} />
              {info?.siblings && (
                <Switcher siblings={info.siblings} current={message.id} disabled={busy} onSwitch={actions.onSwitch} />
              )}
              <CopyButton text={text} />
              {info?.fork_from && (
                <button
                  type="button"
                  className="icon-button tiny"
                  aria-label="Edit message"
                  title="Edit"
                  data-testid="edit-message"
                  disabled={busy}
                  onClick={() => setEditing(true)}
                >
                  <Icon name="edit" size={14} />
                </button>
              )}
            </div>
          )}
        </article>
      );
    case 'tool':
      return (
        <article className="msg msg-tool" aria-label="Tool result" {...common}>
          <ToolResultView message={message} toolName={message.name || toolName} />
        </article>
      );
    case 'system':
      return (
        <article className="msg msg-system" aria-label="System message" {...common}>
          <details>
            <summary>System message</summary>
            <div className="muted">{text}</div>
          </details>
        </article>
      );
    default: {
      const calls = toolCallsOf(message);
      const cut = streaming ? null : cutShort(message);
      const isAnswer = turn?.answerId === message.id;
      const canRegenerate = Boolean(isAnswer && turn?.firstReplyId && turnInfo?.fork_from);
      return (
        <article className={`msg msg-ai${cut ? ` cut-${cut}` : ''}`} aria-label="Assistant" {...common} data-status={cut ?? undefined}>
          <div className={`msg-body${streaming ? ' streaming' : ''}`} aria-live={streaming ? 'polite' : undefined} aria-busy={streaming || undefined} data-testid="message-content">
            {text ? <Markdown text={text} /> : null}
            {streaming && !text && calls.length === 0 && (
              <span className="typing" aria-label="Assistant is typing">
                <span />
                <span />
                <span />
              </span>
            )}
          </div>
          {calls.map((c) => (
            <ToolCallView key={c.id} call={c} />
          ))}
          {cut && (
            <div className="cut-notice" data-testid="cut-notice" role="note">
              <span>{cut === 'stopped' ? 'Stopped: this reply is incomplete.' : 'The model failed: this reply is incomplete.'}</span>
              {canRegenerate && (
                <button type="button" className="small" data-testid="cut-retry" disabled={busy} onClick={() => turn?.firstReplyId && actions.onRegenerate(turn.firstReplyId)}>
                  Retry
                </button>
              )}
              {last && (
                <button type="button" className="small" data-testid="cut-continue" disabled={busy} onClick={actions.onContinue}>
                  Continue
                </button>
              )}
            </div>
          )}
          {isAnswer && !streaming && turn && turn.passages.length > 0 && <Citations passages={turn.passages} />}
          {isAnswer && !streaming && (text || cut) && (
            <div className="msg-actions">
              <Time iso={time} />
              {turnInfo?.siblings && turn?.firstReplyId && (
                <Switcher
                  siblings={turnInfo.siblings}
                  current={turn.firstReplyId}
                  disabled={busy}
                  onSwitch={actions.onSwitch}
                />
              )}
              <CopyButton text={text} />
              {canRegenerate && !cut && (
                <button
                  type="button"
                  className="icon-button tiny"
                  aria-label="Regenerate reply"
                  title="Regenerate"
                  data-testid="regenerate"
                  disabled={busy}
                  onClick={() => turn?.firstReplyId && actions.onRegenerate(turn.firstReplyId)}
                >
                  <Icon name="retry" size={14} />
                </button>
              )}
            </div>
          )}
        </article>
      );
    }
  }
});

interface ListProps {
  messages: readonly Message[];
  streamingId: string | null;
  busy: boolean;
  info: ReadonlyMap<string, MessageBranchInfo>;
  /** When each message was first seen here (for those the server has no time for yet). */
  localTimes: ReadonlyMap<string, string>;
  actions: MessageActions;
  children?: ReactNode;
}

/** The conversation; keeps scrolled to the bottom while the user is there. */
export function MessageList({ messages, streamingId, busy, info, localTimes, actions, children }: ListProps) {
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const [away, setAway] = useState(false);

  useLayoutEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  });

  const toolNames = new Map<string, string>();
  for (const m of messages) for (const c of toolCallsOf(m)) toolNames.set(c.id, c.name);
  const turns = useMemo(() => turnsByAnswer(messages), [messages]);
  const lastAi = [...messages].reverse().find((m) => m.type === 'ai')?.id;

  const toBottom = () => {
    const el = ref.current;
    if (!el) return;
    stick.current = true;
    setAway(false);
    el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
  };

  return (
    <div className="message-list-wrap">
      <div
        className="message-list"
        ref={ref}
        data-testid="message-list"
        tabIndex={0}
        role="region"
        aria-label="Conversation"
        onScroll={(e) => {
          const el = e.currentTarget;
          const near = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
          stick.current = near;
          setAway(!near);
        }}
      >
        <div className="message-column">
          {messages.map((m) => {
            const turn = turns.get(m.id);
            return (
              <MessageItem
                key={m.id}
                message={m}
                toolName={(m.tool_call_id && toolNames.get(m.tool_call_id)) || 'tool'}
                streaming={m.id === streamingId}
                busy={busy}
                info={info.get(m.id)}
                time={info.get(m.id)?.created_at ?? localTimes.get(m.id)}
                turn={turn}
                turnInfo={turn?.firstReplyId ? info.get(turn.firstReplyId) : undefined}
                last={m.id === lastAi}
                actions={actions}
              />
            );
          })}
          {children}
        </div>
      </div>
      {away && (
        <button type="button" className="jump-bottom" data-testid="jump-to-bottom" onClick={toBottom} aria-label="Jump to the latest message">
          <Icon name="down" size={16} /> Latest
        </button>
      )}
    </div>
  );
}
