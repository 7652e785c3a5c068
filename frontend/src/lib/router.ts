/** A tiny History API router: `/`, `/new`, `/a/:id`, `/a/:id/edit`, `/t/:id`. */
import { useEffect, useState, type MouseEvent } from 'react';

export type Route =
  | { name: 'home' }
  | { name: 'new-assistant' }
  | { name: 'assistant-chat'; assistantId: string }
  | { name: 'assistant-edit'; assistantId: string }
  | { name: 'thread'; threadId: string }
  | { name: 'not-found'; path: string };

function segment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function parseRoute(pathname: string): Route {
  const parts = pathname.replace(/\/+$/, '').split('/').filter(Boolean);
  if (parts.length === 0) return { name: 'home' };
  const [head, id, tail] = parts;
  if (head === 'new' && parts.length === 1) return { name: 'new-assistant' };
  if (head === 'a' && id && parts.length === 2) return { name: 'assistant-chat', assistantId: segment(id) };
  if (head === 'a' && id && tail === 'edit' && parts.length === 3)
    return { name: 'assistant-edit', assistantId: segment(id) };
  if (head === 't' && id && parts.length === 2) return { name: 'thread', threadId: segment(id) };
  return { name: 'not-found', path: pathname };
}

export const paths = {
  home: () => '/',
  newAssistant: () => '/new',
  assistant: (id: string) => `/a/${encodeURIComponent(id)}`,
  editAssistant: (id: string) => `/a/${encodeURIComponent(id)}/edit`,
  thread: (id: string) => `/t/${encodeURIComponent(id)}`,
};

const listeners = new Set<() => void>();

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search) return;
  if (opts.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.forEach((l) => l());
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.pathname));
    listeners.add(update);
    window.addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** onClick for an <a href>: navigate in-app unless the user asked for a new tab/window. */
export function linkClick(to: string, after?: () => void) {
  return (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey)
      return;
    e.preventDefault();
    navigate(to);
    after?.();
  };
}
