/**
 * Syntax colouring of code blocks with highlight.js (its common languages), loaded on first
 * need as a separate chunk: a page without code never downloads it.
 */
type HighlightJs = typeof import('highlight.js/lib/common').default;

let engine: HighlightJs | null = null;
let loading: Promise<void> | null = null;
const waiting = new Set<() => void>();

/** Start loading the highlighter (once); listeners run when it is ready. */
export function loadHighlighter(onReady?: () => void): void {
  if (engine) return;
  if (onReady) waiting.add(onReady);
  loading ??= import('highlight.js/lib/common').then(
    (mod) => {
      engine = mod.default;
      const ready = [...waiting];
      waiting.clear();
      ready.forEach((fn) => fn());
    },
    () => {
      loading = null; // a failed chunk load is retried next time
    },
  );
}

export function unsubscribe(onReady: () => void): void {
  waiting.delete(onReady);
}

export function highlighterReady(): boolean {
  return engine !== null;
}

/** Highlighted HTML of `code` (escaped by highlight.js), or null when not loaded yet. */
export function highlight(code: string, language: string): string | null {
  if (!engine) return null;
  try {
    if (language && engine.getLanguage(language)) {
      return engine.highlight(code, { language, ignoreIllegals: true }).value;
    }
    if (code.length > 20_000) return null;
    return engine.highlightAuto(code).value;
  } catch {
    return null;
  }
}
