import { memo, useEffect, useRef, type ReactNode } from 'react';
import { contentText, REJECTION_TEXT, toolCallsOf } from '../api/stream';
import type { Message, ToolCall } from '../api/types';
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

interface ItemProps {
  message: Message;
  toolName: string;
  streaming: boolean;
}

const MessageItem = memo(function MessageItem({ message, toolName, streaming }: ItemProps) {
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
          <div className="bubble">{text}</div>
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
      return (
        <article className="msg msg-ai" aria-label="Assistant" {...common}>
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
        </article>
      );
    }
  }
});

interface ListProps {
  messages: readonly Message[];
  streamingId: string | null;
  children?: ReactNode;
}

/** The conversation; keeps scrolled to the bottom while the user is there. */
export function MessageList({ messages, streamingId, children }: ListProps) {
  const ref = useRef<HTMLDivElement>(null);
  const stick = useRef(true);

  useEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  });

  const toolNames = new Map<string, string>();
  for (const m of messages) for (const c of toolCallsOf(m)) toolNames.set(c.id, c.name);

  return (
    <div
      className="message-list"
      ref={ref}
      data-testid="message-list"
      tabIndex={0}
      role="region"
      aria-label="Conversation"
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
      }}
    >
      <div className="message-column">
        {messages.map((m) => (
          <MessageItem
            key={m.id}
            message={m}
            toolName={(m.tool_call_id && toolNames.get(m.tool_call_id)) || 'tool'}
            streaming={m.id === streamingId}
          />
        ))}
        {children}
      </div>
    </div>
  );
}
