import { memo, useMemo, type MouseEvent } from 'react';
import { renderMarkdown } from '../lib/markdown';

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

export const Markdown = memo(function Markdown({ text }: { text: string }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return (
    <div className="markdown" onClick={onCopyClick} dangerouslySetInnerHTML={{ __html: html }} />
  );
});
