import { useId, useState, type FormEvent } from 'react';
import type { AuthModeInfo } from '../api/types';

interface Props {
  info: AuthModeInfo;
  message?: string | null;
  onCookieSignIn(name: string): Promise<void>;
  onTokenSignIn(token: string): Promise<void>;
}

export function SignIn({ info, message, onCookieSignIn, onTokenSignIn }: Props) {
  const [value, setValue] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const inputId = useId();
  const helpId = useId();
  const cookieMode = info.mode === 'cookie';
  const loginUrl = typeof info.login_url === 'string' ? info.login_url : null;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const v = value.trim();
    if (!v) {
      setError(cookieMode ? 'Enter a name.' : 'Paste a token.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      if (cookieMode) await onCookieSignIn(v);
      else await onTokenSignIn(v.replace(/^Bearer\s+/i, ''));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <form className="signin-card" onSubmit={submit} data-testid="signin-form" noValidate>
        <div className="brand brand-large" aria-hidden="true">
          <img src="/favicon.svg" alt="" width="36" height="36" /> Loom
        </div>
        <h1>{cookieMode ? 'Who are you?' : 'Sign in'}</h1>
        {message && (
          <p className="notice" role="status">
            {message}
          </p>
        )}
        {cookieMode ? (
          <>
            <label htmlFor={inputId}>Your name</label>
            <input
              id={inputId}
              data-testid="signin-name"
              autoComplete="username"
              autoFocus
              maxLength={200}
              value={value}
              aria-describedby={helpId}
              aria-invalid={error ? true : undefined}
              onChange={(e) => setValue(e.target.value)}
            />
            <p id={helpId} className="hint">
              Development mode: the name you type is who you are. Anyone using the same name sees
              the same assistants and chats.
            </p>
          </>
        ) : (
          <>
            {loginUrl && (
              <p>
                <a className="button primary block" href={loginUrl} data-testid="oidc-login">
                  Sign in with your identity provider
                </a>
              </p>
            )}
            <label htmlFor={inputId}>{loginUrl ? 'Or paste an access token' : 'Access token'}</label>
            <textarea
              id={inputId}
              data-testid="signin-token"
              rows={4}
              spellCheck={false}
              autoFocus={!loginUrl}
              value={value}
              aria-describedby={helpId}
              aria-invalid={error ? true : undefined}
              onChange={(e) => setValue(e.target.value)}
            />
            <p id={helpId} className="hint">
              A bearer token (JWT) for this server. It is kept for this browser tab only.
            </p>
          </>
        )}
        {error && (
          <p className="error" role="alert" data-testid="signin-error">
            {error}
          </p>
        )}
        <button type="submit" className="primary block" disabled={busy} data-testid="signin-submit">
          {busy ? 'Signing in…' : cookieMode ? 'Continue' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
