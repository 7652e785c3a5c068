import { describe, expect, it } from 'vitest';
import { parseRoute, paths } from './router';

describe('parseRoute', () => {
  it('knows the UI paths', () => {
    expect(parseRoute('/')).toEqual({ name: 'home' });
    expect(parseRoute('/new')).toEqual({ name: 'new-assistant' });
    expect(parseRoute('/a/abc')).toEqual({ name: 'assistant-chat', assistantId: 'abc' });
    expect(parseRoute('/a/abc/')).toEqual({ name: 'assistant-chat', assistantId: 'abc' });
    expect(parseRoute('/a/abc/edit')).toEqual({ name: 'assistant-edit', assistantId: 'abc' });
    expect(parseRoute('/t/t%201')).toEqual({ name: 'thread', threadId: 't 1' });
    expect(parseRoute('/x/y')).toEqual({ name: 'not-found', path: '/x/y' });
  });

  it('round-trips the paths it builds', () => {
    expect(parseRoute(paths.thread('a/b'))).toEqual({ name: 'thread', threadId: 'a/b' });
    expect(parseRoute(paths.editAssistant('x y'))).toEqual({ name: 'assistant-edit', assistantId: 'x y' });
  });
});
