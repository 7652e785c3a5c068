/** App-wide state: who is signed in and the sidebar lists. */
import { createContext, useContext } from 'react';
import type { Assistant, AuthMode, Thread } from './api/types';

export interface AppState {
  mode: AuthMode;
  user: string;
  assistants: Assistant[] | null;
  publicAssistants: Assistant[] | null;
  threads: Thread[] | null;
  listError: string | null;
  /** The assistant of the chat on screen (for "New chat"). */
  activeAssistantId: string | null;
  setActiveAssistantId(id: string | null): void;
  reloadAssistants(): Promise<void>;
  reloadThreads(): Promise<void>;
  upsertThread(thread: Thread): void;
  removeThread(threadId: string): void;
  upsertAssistant(assistant: Assistant): void;
  removeAssistant(assistantId: string): void;
  isMine(assistant: Pick<Assistant, 'assistant_id' | 'user_id'>): boolean;
  signOut(): void;
}

export const AppContext = createContext<AppState | null>(null);

export function useApp(): AppState {
  const ctx = useContext(AppContext);
  if (!ctx) throw new Error('useApp outside <AppContext.Provider>');
  return ctx;
}

export function byUpdatedDesc<T extends { updated_at: string }>(a: T, b: T): number {
  const tb = Date.parse(b.updated_at ?? "") || 0;
  const ta = Date.parse(a.updated_at ?? "") || 0;
  return tb - ta;
}
