import { useEffect, useId, useMemo, useState, type FormEvent } from 'react';
import { api } from '../api/client';
import type { Assistant, Thread } from '../api/types';
import { linkClick, navigate, paths, type Route } from '../lib/router';
import type { Theme } from '../lib/theme';
import { fullTime, groupByDate, shortTime } from '../lib/time';
import { useApp } from '../state';
import { Icon } from './Icon';

/** Server-side thread search (titles and message text), debounced. */
function useThreadSearch(query: string, version: unknown) {
  const [results, setResults] = useState<Thread[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const q = query.trim();
  useEffect(() => {
    if (!q) {
      setResults(null);
      setError(null);
      return;
    }
    const controller = new AbortController();
    const timer = window.setTimeout(() => {
      api.searchThreads(q, controller.signal).then(
        (found) => {
          setResults(found);
          setError(null);
        },
        (err: unknown) => {
          if (!controller.signal.aborted) setError(err instanceof Error ? err.message : String(err));
        },
      );
    }, 250);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
  }, [q, version]);
  return { searching: Boolean(q), results, error };
}

interface Props {
  route: Route;
  theme: Theme;
  onToggleTheme(): void;
}

export function Sidebar({ route, theme, onToggleTheme }: Props) {
  const app = useApp();
  const mine = app.assistants ?? [];
  const mineIds = new Set(mine.map((a) => a.assistant_id));
  const others = (app.publicAssistants ?? []).filter((a) => !mineIds.has(a.assistant_id));
  const activeThread = route.name === 'thread' ? route.threadId : null;
  const activeAssistant =
    route.name === 'assistant-chat' || route.name === 'assistant-edit' ? route.assistantId : null;
  const newChatTarget = app.activeAssistantId ?? activeAssistant ?? mine[0]?.assistant_id ?? null;
  const newChatHref = newChatTarget ? paths.assistant(newChatTarget) : paths.home();
  const [query, setQuery] = useState('');
  const search = useThreadSearch(query, app.threads);
  const searchId = useId();
  const names = useMemo(() => {
    const map = new Map<string, string>();
    for (const a of [...(app.publicAssistants ?? []), ...mine]) map.set(a.assistant_id, a.name);
    return map;
  }, [app.publicAssistants, mine]);
  const shown = search.searching ? search.results : app.threads;
  const groups = groupByDate(shown ?? [], (t) => t.updated_at);

  return (
    <aside id="sidebar" className="sidebar" data-testid="sidebar" aria-label="Sidebar">
      <div className="sidebar-head">
        <a className="brand" href="/" onClick={linkClick('/')}>
          <img src="/favicon.svg" alt="" width="24" height="24" /> Loom
        </a>
        <button
          type="button"
          className="icon-button"
          onClick={onToggleTheme}
          data-testid="theme-toggle"
          aria-label={theme === 'dark' ? 'Switch to light theme' : 'Switch to dark theme'}
          title={theme === 'dark' ? 'Light theme' : 'Dark theme'}
        >
          <Icon name={theme === 'dark' ? 'sun' : 'moon'} />
        </button>
      </div>

      <div className="sidebar-actions">
        <a
          className="button primary block"
          href={newChatHref}
          data-testid="new-chat"
          onClick={linkClick(newChatHref)}
        >
          <Icon name="plus" /> New chat
        </a>
        <a
          className="button block"
          href={paths.newAssistant()}
          data-testid="new-assistant"
          onClick={linkClick(paths.newAssistant())}
        >
          <Icon name="bot" /> New assistant
        </a>
      </div>

      <div className="sidebar-scroll">
        {app.listError && (
          <p className="error small" role="alert">
            {app.listError}{' '}
            <button
              type="button"
              className="link"
              onClick={() => {
                void app.reloadAssistants();
                void app.reloadThreads();
              }}
            >
              Retry
            </button>
          </p>
        )}

        <nav aria-labelledby="nav-chats">
          <h2 id="nav-chats" className="nav-title">
            Chats
          </h2>
          <div className="thread-search">
            <label htmlFor={searchId} className="sr-only">
              Search chats
            </label>
            <Icon name="search" size={15} />
            <input
              id={searchId}
              type="search"
              data-testid="thread-search"
              placeholder="Search chats"
              value={query}
              onChange={(e) => setQuery(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Escape' && query) {
                  e.stopPropagation();
                  e.preventDefault();
                  setQuery('');
                }
              }}
            />
          </div>
          {search.error && (
            <p className="error small" role="alert">
              {search.error}
            </p>
          )}
          {shown === null ? (
            <p className="muted small">{search.searching ? 'Searching…' : 'Loading…'}</p>
          ) : shown.length === 0 ? (
            <p className="muted small" data-testid={search.searching ? 'no-search-results' : undefined}>
              {search.searching ? 'No chat matches.' : 'No chats yet.'}
            </p>
          ) : (
            <div data-testid={search.searching ? 'search-results' : 'thread-list'} aria-live={search.searching ? 'polite' : undefined}>
              {groups.map((g) => (
                <section key={g.label} className="thread-group" aria-label={g.label}>
                  <h3 className="group-title" data-testid="thread-group">
                    {g.label}
                  </h3>
                  <ul className="nav-list">
                    {g.items.map((t) => (
                      <ThreadItem
                        key={t.thread_id}
                        thread={t}
                        assistantName={t.assistant_id ? names.get(t.assistant_id) : undefined}
                        active={t.thread_id === activeThread}
                      />
                    ))}
                  </ul>
                </section>
              ))}
            </div>
          )}
        </nav>

        <nav aria-labelledby="nav-assistants">
          <h2 id="nav-assistants" className="nav-title">
            My assistants
          </h2>
          {app.assistants === null ? (
            <p className="muted small">Loading…</p>
          ) : mine.length === 0 ? (
            <p className="muted small">None yet.</p>
          ) : (
            <ul className="nav-list" data-testid="assistant-list">
              {mine.map((a) => (
                <AssistantItem key={a.assistant_id} assistant={a} editable active={a.assistant_id === activeAssistant} />
              ))}
            </ul>
          )}
        </nav>

        {others.length > 0 && (
          <nav aria-labelledby="nav-public">
            <h2 id="nav-public" className="nav-title">
              Public assistants
            </h2>
            <ul className="nav-list" data-testid="public-assistant-list">
              {others.map((a) => (
                <AssistantItem key={a.assistant_id} assistant={a} editable={false} active={a.assistant_id === activeAssistant} />
              ))}
            </ul>
          </nav>
        )}
      </div>

      <div className="sidebar-foot">
        <span className="user" title={app.user}>
          Signed in as <strong data-testid="user-name">{app.user}</strong>
        </span>
        <button type="button" className="icon-button" onClick={app.signOut} data-testid="sign-out" aria-label="Sign out" title="Sign out">
          <Icon name="logout" />
        </button>
      </div>
    </aside>
  );
}

function AssistantItem({
  assistant,
  editable,
  active,
}: {
  assistant: Assistant;
  editable: boolean;
  active: boolean;
}) {
  const href = paths.assistant(assistant.assistant_id);
  return (
    <li className={`nav-item${active ? ' active' : ''}`} data-testid="assistant-item" data-assistant-id={assistant.assistant_id}>
      <a href={href} onClick={linkClick(href)} aria-current={active ? 'page' : undefined} title={`New chat with ${assistant.name}`}>
        <span className="nav-label">{assistant.name || 'Untitled assistant'}</span>
        {assistant.public && <span className="badge">public</span>}
      </a>
      {editable && (
        <a
          className="icon-button small"
          href={paths.editAssistant(assistant.assistant_id)}
          onClick={linkClick(paths.editAssistant(assistant.assistant_id))}
          aria-label={`Edit assistant ${assistant.name}`}
          title="Edit"
        >
          <Icon name="edit" size={15} />
        </a>
      )}
    </li>
  );
}

function ThreadItem({ thread, active, assistantName }: { thread: Thread; active: boolean; assistantName?: string | undefined }) {
  const app = useApp();
  const [mode, setMode] = useState<'view' | 'rename' | 'confirm-delete'>('view');
  const [draft, setDraft] = useState(thread.name);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const href = paths.thread(thread.thread_id);
  const label = thread.name || 'Untitled chat';

  const rename = async (e: FormEvent) => {
    e.preventDefault();
    const name = draft.trim();
    if (!name || name === thread.name) {
      setMode('view');
      return;
    }
    setBusy(true);
    try {
      const updated = await api.updateThread(thread.thread_id, { name, assistant_id: thread.assistant_id });
      app.upsertThread({ ...thread, ...updated, name: updated?.name ?? name });
      setMode('view');
      setError(null);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    setBusy(true);
    try {
      await api.deleteThread(thread.thread_id);
      app.removeThread(thread.thread_id);
      if (active) navigate(paths.home(), { replace: true });
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setMode('view');
    } finally {
      setBusy(false);
    }
  };

  return (
    <li className={`nav-item${active ? ' active' : ''}`} data-testid="thread-item" data-thread-id={thread.thread_id}>
      {mode === 'rename' ? (
        <form className="rename-form" onSubmit={rename}>
          <label className="sr-only" htmlFor={`rename-${thread.thread_id}`}>
            New name for {label}
          </label>
          <input
            id={`rename-${thread.thread_id}`}
            data-testid="rename-input"
            value={draft}
            autoFocus
            disabled={busy}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={(e) => {
              if (e.key === 'Escape') {
                e.stopPropagation();
                setDraft(thread.name);
                setMode('view');
              }
            }}
          />
          <button type="submit" className="icon-button small" aria-label="Save name" disabled={busy}>
            <Icon name="check" size={15} />
          </button>
        </form>
      ) : mode === 'confirm-delete' ? (
        <div className="confirm-row" role="group" aria-label={`Delete ${label}?`}>
          <span className="nav-label">Delete “{label}”?</span>
          <button type="button" className="small danger" onClick={remove} disabled={busy} data-testid="confirm-delete" autoFocus>
            Delete
          </button>
          <button type="button" className="small" onClick={() => setMode('view')} disabled={busy}>
            Cancel
          </button>
        </div>
      ) : (
        <>
          <a href={href} onClick={linkClick(href)} aria-current={active ? 'page' : undefined} title={`${label} — ${fullTime(thread.updated_at)}`}>
            <span className="nav-label">{label}</span>
            <span className="nav-meta" data-testid="thread-meta">
              {assistantName && <span className="nav-assistant">{assistantName}</span>}
              <time dateTime={thread.updated_at}>{shortTime(thread.updated_at)}</time>
            </span>
          </a>
          <button
            type="button"
            className="icon-button small"
            aria-label={`Rename chat ${label}`}
            title="Rename"
            data-testid="rename-thread"
            onClick={() => {
              setDraft(thread.name);
              setMode('rename');
            }}
          >
            <Icon name="edit" size={15} />
          </button>
          <button
            type="button"
            className="icon-button small"
            aria-label={`Delete chat ${label}`}
            title="Delete"
            data-testid="delete-thread"
            onClick={() => setMode('confirm-delete')}
          >
            <Icon name="trash" size={15} />
          </button>
        </>
      )}
      {error && (
        <p className="error small" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}
