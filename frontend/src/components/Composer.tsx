import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { Icon } from './Icon';
import { HiddenFileInput } from './Upload';

interface Props {
  streaming: boolean;
  disabled: boolean;
  disabledReason?: string | null;
  placeholder: string;
  onSend(text: string): Promise<boolean>;
  onStop(): void;
  onAttach(files: File[]): void;
  attachDisabled?: boolean;
  autoFocus?: boolean;
}

export function Composer({
  streaming,
  disabled,
  disabledReason,
  placeholder,
  onSend,
  onStop,
  onAttach,
  attachDisabled,
  autoFocus,
}: Props) {
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const area = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  // Grow with the text, up to a limit set in CSS.
  useEffect(() => {
    const el = area.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);

  useEffect(() => {
    if (autoFocus) area.current?.focus();
  }, [autoFocus]);

  const submit = async (e?: FormEvent) => {
    e?.preventDefault();
    if (streaming || disabled || sending || !text.trim()) return;
    setSending(true);
    try {
      if (await onSend(text)) setText('');
    } finally {
      setSending(false);
      area.current?.focus();
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    }
  };

  return (
    <form className="composer" onSubmit={submit} data-testid="composer">
      <div className="composer-box">
        <button
          type="button"
          className="icon-button"
          aria-label="Attach files"
          title="Attach files"
          data-testid="attach-button"
          disabled={attachDisabled}
          onClick={() => fileInput.current?.click()}
        >
          <Icon name="attach" />
        </button>
        <HiddenFileInput
          inputRef={fileInput}
          label="Files to add to this chat"
          testId="upload-input"
          onFiles={onAttach}
        />
        <label htmlFor="composer-input" className="sr-only">
          Message
        </label>
        <textarea
          id="composer-input"
          ref={area}
          data-testid="composer-input"
          rows={1}
          value={text}
          placeholder={placeholder}
          disabled={disabled}
          aria-describedby={disabledReason ? 'composer-hint' : undefined}
          onChange={(e) => setText(e.target.value)}
          onKeyDown={onKeyDown}
        />
        {streaming ? (
          <button type="button" className="icon-button stop" onClick={onStop} data-testid="stop-button" aria-label="Stop generating" title="Stop">
            <Icon name="stop" />
          </button>
        ) : (
          <button
            type="submit"
            className="icon-button send"
            disabled={disabled || sending || !text.trim()}
            data-testid="send-button"
            aria-label="Send message"
            title="Send (Enter)"
          >
            <Icon name="send" />
          </button>
        )}
      </div>
      <p className={`hint composer-hint${disabledReason ? ' reason' : ''}`} id="composer-hint">
        {disabledReason ?? 'Enter to send, Shift+Enter for a new line. Drop files to add them to this chat.'}
      </p>
    </form>
  );
}
