/** Markdown -> sanitised HTML (marked + DOMPurify), with styled code blocks. */
import DOMPurify from 'dompurify';
import { Marked, type Tokens } from 'marked';
import { highlight } from './highlight';

function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    code({ text, lang }: Tokens.Code): string {
      const language = (lang ?? '').trim().split(/\s+/)[0] ?? '';
      const label = language ? escapeHtml(language) : 'code';
      const coloured = highlight(text, language);
      const classes = [language ? `language-${escapeHtml(language)}` : '', coloured ? 'hljs' : '']
        .filter(Boolean)
        .join(' ');
      const cls = classes ? ` class="${classes}"` : '';
      return (
        `<div class="code-block"><div class="code-head"><span class="code-lang">${label}</span>` +
        `<button type="button" class="code-copy" data-copy-code="">Copy</button></div>` +
        `<pre><code${cls}>${coloured ?? escapeHtml(text)}</code></pre></div>`
      );
    },
  },
});

let hooked = false;
function purifier() {
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.tagName === 'A' && node.getAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer');
      }
    });
  }
  return DOMPurify;
}

/** Whether the text has a fenced or indented code block (worth loading the highlighter). */
export function hasCode(text: string): boolean {
  return /(^|\n)\s*(```|~~~)/.test(text);
}

export function renderMarkdown(text: string): string {
  const html = marked.parse(text) as string;
  return purifier().sanitize(html, { ADD_ATTR: ['target', 'data-copy-code'] });
}
