import { memo, useEffect, useMemo, useState, type MouseEvent } from 'react';
import { highlighterReady, loadHighlighter, unsubscribe } from '../lib/highlight';
import { hasCode, renderMarkdown } from '../lib/markdown';

function onCopyClick(e: MouseEvent<HTMLDivElement>) {
  const target = e.target as HTMLElement;
  const button = target.closest<HTMLButtonElement>('button[data-copy-code]');
  if (!button) return;
  const code = button.closest('.code-block')?.querySelector('code')?.textContent ?? '';
  const done = (label: string) => {
    button.textContent = label;
    window.setTimeout(() => (button.textContent = 'Copy'), 1500);
  };
  if (navigator.clipboard?.writeText) {
    navigator.clipboard.writeText(code).then(
      () => done('Copied'),
      () => done('Copy failed'),
    );
  } else {
    done('Copy failed');
  }
}

/** Re-render once the code highlighter has loaded, when the text has code. */
function useHighlighter(needed: boolean): boolean {
  const [ready, setReady] = useState(highlighterReady);
  useEffect(() => {
    if (!needed || ready) return;
    const done = () => setReady(true);
    loadHighlighter(done);
    return () => unsubscribe(done);
  }, [needed, ready]);
  return ready;
}

export const Markdown = memo(function Markdown({ text }: { text: string }) {
  const ready = useHighlighter(hasCode(text));
  const html = useMemo(() => renderMarkdown(text), [text, ready]);
  return (
    <div className="markdown" onClick={onCopyClick} dangerouslySetInnerHTML={{ __html: html }} />
  );
});
