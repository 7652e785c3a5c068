/** Light/dark theme: follows prefers-color-scheme until the user picks one with the toggle. */
import { useEffect, useState } from 'react';

export type Theme = 'light' | 'dark';
const KEY = 'loom.theme';

function saved(): Theme | null {
  try {
    const v = localStorage.getItem(KEY);
    return v === 'light' || v === 'dark' ? v : null;
  } catch {
    return null;
  }
}

function systemTheme(): Theme {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches
    ? 'dark'
    : 'light';
}

/** Apply the saved choice before the first render (no flash of the wrong theme). */
export function applySavedTheme(): void {
  const t = saved();
  if (t) document.documentElement.dataset.theme = t;
}

export function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(() => saved() ?? systemTheme());
  useEffect(() => {
    if (saved()) return;
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const onChange = () => {
      if (!saved()) setTheme(mq.matches ? 'dark' : 'light');
    };
    mq.addEventListener('change', onChange);
    return () => mq.removeEventListener('change', onChange);
  }, []);
  const toggle = () => {
    const next: Theme = theme === 'dark' ? 'light' : 'dark';
    setTheme(next);
    document.documentElement.dataset.theme = next;
    try {
      localStorage.setItem(KEY, next);
    } catch {
      /* ignore */
    }
  };
  return [theme, toggle];
}
