import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import {
  clearToken,
  clearUserCookie,
  consumeTokenFromFragment,
  getToken,
  getUserCookie,
  setToken,
  setUserCookie,
  tokenSubject,
} from './api/auth';
import { api, ApiError, setUnauthorizedHandler } from './api/client';
import type { Assistant, AuthModeInfo, Thread } from './api/types';
import { AssistantEditor } from './components/AssistantEditor';
import { Chat } from './components/Chat';
import { Home } from './components/Home';
import { Icon } from './components/Icon';
import { Sidebar } from './components/Sidebar';
import { SignIn } from './components/SignIn';
import { paths, linkClick, useRoute } from './lib/router';
import { useTheme } from './lib/theme';
import { AppContext, byUpdatedDesc, type AppState } from './state';

type Phase =
  | { kind: 'loading' }
  | { kind: 'error'; message: string }
  | { kind: 'signin'; info: AuthModeInfo; message: string | null }
  | { kind: 'ready'; info: AuthModeInfo; user: string };

/** Check the current credentials; returns the user's display name or throws. */
async function whoAmI(info: AuthModeInfo): Promise<string> {
  const fallback = info.mode === 'cookie' ? getUserCookie() : tokenSubject(getToken());
  try {
    const me = await api.me();
    const id = me?.user_id ?? me?.sub ?? me?.name;
    return typeof id === 'string' && id ? id : (fallback ?? 'you');
  } catch (err) {
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    // No /me on this server: any authenticated call tells whether the credentials work.
    await api.listAssistants(true);
    return fallback ?? 'you';
  }
}

function hasCredentials(info: AuthModeInfo): boolean {
  return info.mode === 'cookie' ? Boolean(getUserCookie()) : Boolean(getToken());
}

export function App() {
  const [phase, setPhase] = useState<Phase>({ kind: 'loading' });
  const [bootKey, setBootKey] = useState(0);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      consumeTokenFromFragment();
      let info: AuthModeInfo;
      try {
        info = await api.authMode();
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          info = { mode: 'cookie' }; // an OpenGPTs-style server without /auth/mode
        } else {
          if (!cancelled)
            setPhase({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
          return;
        }
      }
      if (info.mode === 'cookie') clearToken();
      if (!hasCredentials(info)) {
        if (!cancelled) setPhase({ kind: 'signin', info, message: null });
        return;
      }
      try {
        const user = await whoAmI(info);
        if (!cancelled) setPhase({ kind: 'ready', info, user });
      } catch (err) {
        if (cancelled) return;
        if (err instanceof ApiError && err.status === 401) {
          if (info.mode !== 'cookie') clearToken();
          setPhase({ kind: 'signin', info, message: `Please sign in again (${err.message})` });
        } else {
          setPhase({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
        }
      }
    })();
    return () => {
      cancelled = true;
    };
  }, [bootKey]);

  if (phase.kind === 'loading') {
    return (
      <div className="center-screen" role="status" aria-live="polite">
        Loading…
      </div>
    );
  }
  if (phase.kind === 'error') {
    return (
      <main className="center-screen" id="main">
        <div className="signin-card">
          <h1>Cannot start Loom</h1>
          <p className="error" role="alert">
            {phase.message}
          </p>
          <button type="button" className="primary" onClick={() => setBootKey((k) => k + 1)}>
            Try again
          </button>
        </div>
      </main>
    );
  }
  if (phase.kind === 'signin') {
    const { info } = phase;
    const finish = async () => {
      try {
        const user = await whoAmI(info);
        setPhase({ kind: 'ready', info, user });
      } catch (err) {
        if (info.mode === 'cookie') clearUserCookie();
        else clearToken();
        throw err instanceof ApiError && err.status === 401
          ? new Error(`The server did not accept this: ${err.message}`)
          : err;
      }
    };
    return (
      <SignIn
        info={info}
        message={phase.message}
        onCookieSignIn={async (name) => {
          setUserCookie(name);
          await finish();
        }}
        onTokenSignIn={async (token) => {
          setToken(token);
          await finish();
        }}
      />
    );
  }
  return (
    <Shell
      key={phase.user}
      info={phase.info}
      user={phase.user}
      onSignedOut={(message) => setPhase({ kind: 'signin', info: phase.info, message })}
    />
  );
}

function Shell({
  info,
  user,
  onSignedOut,
}: {
  info: AuthModeInfo;
  user: string;
  onSignedOut(message: string | null): void;
}) {
  const route = useRoute();
  const [theme, toggleTheme] = useTheme();
  const [navOpen, setNavOpen] = useState(false);
  const [assistants, setAssistants] = useState<Assistant[] | null>(null);
  const [publicAssistants, setPublicAssistants] = useState<Assistant[] | null>(null);
  const [threads, setThreads] = useState<Thread[] | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [activeAssistantId, setActiveAssistantId] = useState<string | null>(null);
  const mainRef = useRef<HTMLElement>(null);
  const menuButtonRef = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    setUnauthorizedHandler((err) => {
      if (info.mode !== 'cookie') clearToken();
      onSignedOut(`Your session is no longer valid: ${err.message}`);
    });
    return () => setUnauthorizedHandler(null);
  }, [info.mode, onSignedOut]);

  const reloadAssistants = useCallback(async () => {
    try {
      const [mine, pub] = await Promise.all([
        api.listAssistants(),
        api.listPublicAssistants().catch(() => [] as Assistant[]),
      ]);
      setAssistants([...mine].sort(byUpdatedDesc));
      setPublicAssistants([...pub].sort(byUpdatedDesc));
      setListError(null);
    } catch (err) {
      setListError(err instanceof Error ? err.message : String(err));
    }
  }, []);

  const reloadThreads = useCallback(async () => {
    try {
      const list = await api.listThreads();
      setThreads([...list].sort(byUpdatedDesc));
      setListError(null);
    } catch (err) {
      setListError(err instanceof Error ? err.message : String(err));
    }
  }, []);

  useEffect(() => {
    void reloadAssistants();
    void reloadThreads();
  }, [reloadAssistants, reloadThreads]);

  // Close the mobile menu on navigation; move focus to the new page for screen readers.
  const routeKey = JSON.stringify(route);
  const firstRoute = useRef(true);
  useEffect(() => {
    setNavOpen(false);
    if (firstRoute.current) {
      firstRoute.current = false;
      return;
    }
    mainRef.current?.focus({ preventScroll: true });
  }, [routeKey]);

  useEffect(() => {
    if (!navOpen) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        setNavOpen(false);
        menuButtonRef.current?.focus();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [navOpen]);

  const mineIds = useMemo(() => new Set((assistants ?? []).map((a) => a.assistant_id)), [assistants]);

  const state: AppState = useMemo(
    () => ({
      mode: info.mode,
      user,
      assistants,
      publicAssistants,
      threads,
      listError,
      activeAssistantId,
      setActiveAssistantId,
      reloadAssistants,
      reloadThreads,
      upsertThread: (t) =>
        setThreads((list) =>
          [t, ...(list ?? []).filter((x) => x.thread_id !== t.thread_id)].sort(byUpdatedDesc),
        ),
      removeThread: (id) => setThreads((list) => (list ?? []).filter((x) => x.thread_id !== id)),
      upsertAssistant: (a) => {
        setAssistants((list) =>
          [a, ...(list ?? []).filter((x) => x.assistant_id !== a.assistant_id)].sort(byUpdatedDesc),
        );
        setPublicAssistants((list) => {
          const rest = (list ?? []).filter((x) => x.assistant_id !== a.assistant_id);
          return (a.public ? [a, ...rest] : rest).sort(byUpdatedDesc);
        });
      },
      removeAssistant: (id) => {
        setAssistants((list) => (list ?? []).filter((x) => x.assistant_id !== id));
        setPublicAssistants((list) => (list ?? []).filter((x) => x.assistant_id !== id));
      },
      isMine: (a) => mineIds.has(a.assistant_id) || (assistants === null && a.user_id === user),
      signOut: () => {
        if (info.mode === 'cookie') clearUserCookie();
        else clearToken();
        onSignedOut(null);
      },
    }),
    [
      info.mode,
      user,
      assistants,
      publicAssistants,
      threads,
      listError,
      activeAssistantId,
      reloadAssistants,
      reloadThreads,
      mineIds,
      onSignedOut,
    ],
  );

  let page;
  switch (route.name) {
    case 'home':
      page = <Home />;
      break;
    case 'new-assistant':
      page = <AssistantEditor key="new" />;
      break;
    case 'assistant-edit':
      page = <AssistantEditor key={route.assistantId} assistantId={route.assistantId} />;
      break;
    case 'assistant-chat':
      page = <Chat key="chat" assistantId={route.assistantId} />;
      break;
    case 'thread':
      page = <Chat key="chat" threadId={route.threadId} />;
      break;
    default:
      page = (
        <div className="page">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>.{' '}
            <a href={paths.home()} onClick={linkClick(paths.home())}>
              Go home
            </a>
          </p>
        </div>
      );
  }

  return (
    <AppContext.Provider value={state}>
      <div className={`app${navOpen ? ' nav-open' : ''}`}>
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <header className="topbar">
          <button
            ref={menuButtonRef}
            type="button"
            className="icon-button"
            aria-controls="sidebar"
            aria-expanded={navOpen}
            aria-label={navOpen ? 'Close menu' : 'Open menu'}
            data-testid="menu-toggle"
            onClick={() => setNavOpen((o) => !o)}
          >
            <Icon name={navOpen ? 'close' : 'menu'} />
          </button>
          <a className="brand" href="/" onClick={linkClick('/')}>
            <img src="/favicon.svg" alt="" width="22" height="22" /> Loom
          </a>
        </header>
        <Sidebar route={route} theme={theme} onToggleTheme={toggleTheme} />
        <div className="backdrop" aria-hidden="true" onClick={() => setNavOpen(false)} />
        <main id="main" ref={mainRef} tabIndex={-1}>
          {page}
        </main>
      </div>
    </AppContext.Provider>
  );
}
