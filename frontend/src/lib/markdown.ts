/**
 * Markdown -> sanitised HTML (marked + DOMPurify), with styled code blocks.
 *
 * Images load only from Loom's own origin or `data:` URLs (as the server's CSP `img-src` says):
 * any other image, written as markdown (`![alt](https://…)`) or as raw HTML, is shown as a link
 * to it instead, so a reply cannot make the browser fetch a URL (which could carry the
 * conversation to someone else's server) without the user clicking it.
 */
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

/** Whether an image at `src` may be loaded: a `data:image/` URL or a URL of `origin`. */
export function isLocalImage(src: string, origin: string): boolean {
  const value = src.trim();
  if (/^data:image\//i.test(value)) return true;
  if (!origin || !value) return false;
  try {
    const url = new URL(value, `${origin}/`);
    return /^https?:$/.test(url.protocol) && url.origin === origin;
  } catch {
    return false;
  }
}

function pageOrigin(): string {
  return typeof location === 'undefined' ? '' : location.origin;
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

/** The link shown in place of a remote image: its alt text (or its URL) linking to it. */
function replaceWithLink(img: Element): void {
  const href = (img.getAttribute('src') ?? '').trim();
  const web = /^https?:\/\//i.test(href);
  const link = img.ownerDocument.createElement(web ? 'a' : 'span');
  link.className = 'image-link';
  link.textContent = (img.getAttribute('alt') ?? '').trim() || href;
  const title = img.getAttribute('title');
  if (title) link.setAttribute('title', title);
  if (web) {
    link.setAttribute('href', href);
    link.setAttribute('target', '_blank');
    link.setAttribute('rel', 'noopener noreferrer');
  }
  img.replaceWith(link);
}

let hooked = false;
function purifier() {
  if (!hooked) {
    hooked = true;
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      const src = node.getAttribute('src');
      if (node.tagName === 'IMG' && !isLocalImage(src ?? '', pageOrigin())) {
        replaceWithLink(node); // `![alt](https://…)` or raw HTML `<img src="https://…">`
        return;
      }
      if (src !== null && !isLocalImage(src, pageOrigin())) node.removeAttribute('src');
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
  // DOMPurify parses into an inert document: nothing loads before the hook has run.
  const html = marked.parse(text) as string;
  return purifier().sanitize(html, {
    ADD_ATTR: ['target', 'data-copy-code'],
    // Inline styles would break the CSP (style-src 'self'); the others load media.
    FORBID_ATTR: ['style', 'srcset', 'poster', 'background'],
    FORBID_TAGS: ['audio', 'video', 'source', 'track', 'picture'],
  });
}
