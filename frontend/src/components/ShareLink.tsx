import { useId, useRef, useState } from 'react';
import { paths } from '../lib/router';
import { Icon } from './Icon';

/** "Share" button for a public assistant: shows its link and copies it. */
export function ShareLink({ assistantId }: { assistantId: string }) {
  const [open, setOpen] = useState(false);
  const [copied, setCopied] = useState<string | null>(null);
  const input = useRef<HTMLInputElement>(null);
  const id = useId();
  const url = `${location.origin}${paths.assistant(assistantId)}`;

  const copy = async () => {
    try {
      await navigator.clipboard.writeText(url);
      setCopied('Link copied.');
    } catch {
      input.current?.select();
      setCopied('Press Ctrl+C (⌘C) to copy.');
    }
  };

  return (
    <span className="share">
      <button
        type="button"
        className="button"
        aria-expanded={open}
        aria-controls={id}
        data-testid="share-button"
        onClick={() => {
          setOpen((o) => !o);
          setCopied(null);
        }}
      >
        <Icon name="share" /> Share
      </button>
      {open && (
        <span className="share-pop" id={id}>
          <label htmlFor={`${id}-url`} className="sr-only">
            Share link
          </label>
          <input
            id={`${id}-url`}
            ref={input}
            readOnly
            value={url}
            data-testid="share-url"
            onFocus={(e) => e.target.select()}
          />
          <button type="button" className="small primary" onClick={copy}>
            Copy
          </button>
          <span role="status" className="small muted">
            {copied}
          </span>
        </span>
      )}
    </span>
  );
}
