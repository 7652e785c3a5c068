/**
 * Credentials of the browser session.
 *
 * Cookie mode (development): the `opengpts_user_id` cookie is the user.
 * JWT / OIDC mode: a bearer token kept in sessionStorage (so it is forgotten with the tab),
 * from exactly two places (frontend/README.md, "Signing in"): pasted by the user, or an
 * `#access_token=...` fragment after a redirect from the identity provider. An OpenID
 * `id_token` is never taken: it says who signed in to the client, it is not an API credential.
 */

export const USER_COOKIE = 'opengpts_user_id';
const TOKEN_KEY = 'loom.access_token';

let memoryToken: string | null = null;

function storage(): Storage | null {
  try {
    return typeof sessionStorage === 'undefined' ? null : sessionStorage;
  } catch {
    return null;
  }
}

export function getToken(): string | null {
  return storage()?.getItem(TOKEN_KEY) ?? memoryToken;
}

export function setToken(token: string): void {
  memoryToken = token;
  try {
    storage()?.setItem(TOKEN_KEY, token);
  } catch {
    /* storage may be full or disabled: the in-memory copy still works for this page */
  }
}

export function clearToken(): void {
  memoryToken = null;
  try {
    storage()?.removeItem(TOKEN_KEY);
  } catch {
    /* ignore */
  }
}

/** Headers that authenticate a request in token mode (empty in cookie mode). */
export function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export function getUserCookie(): string | null {
  if (typeof document === 'undefined') return null;
  for (const part of document.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (part.slice(0, eq).trim() === USER_COOKIE) {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw) || null;
      } catch {
        return raw || null;
      }
    }
  }
  return null;
}

export function setUserCookie(userId: string): void {
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = `${USER_COOKIE}=${encodeURIComponent(userId)}; path=/; max-age=31536000; SameSite=Lax${secure}`;
}

export function clearUserCookie(): void {
  document.cookie = `${USER_COOKIE}=; path=/; max-age=0; SameSite=Lax`;
}

/** Fragment parameters that hold a credential: never left in the address bar or history. */
const FRAGMENT_CREDENTIALS = ['access_token', 'id_token'];

/**
 * Take `access_token` from the URL fragment (a redirect from the identity provider), store it
 * and remove the fragment from the address bar. Returns the token when one was found. An
 * `id_token` there is removed from the address bar too, but never used.
 */
export function consumeTokenFromFragment(): string | null {
  if (typeof location === 'undefined' || !location.hash) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  if (!FRAGMENT_CREDENTIALS.some((name) => params.has(name))) return null;
  history.replaceState(history.state, '', location.pathname + location.search);
  const token = params.get('access_token');
  if (!token) return null;
  setToken(token);
  return token;
}

/** The `sub` claim of a JWT, without verifying it (for display only). */
export function tokenSubject(token: string | null): string | null {
  if (!token) return null;
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(json) as Record<string, unknown>;
    const name = claims.preferred_username ?? claims.email ?? claims.sub;
    return typeof name === 'string' ? name : null;
  } catch {
    return null;
  }
}
