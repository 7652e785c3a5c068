import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clearToken, consumeTokenFromFragment, getToken } from './auth';

/** A page at `url`: the `location` and `history` that auth.ts reads (no DOM in these tests). */
function visit(url: string): { address: () => string } {
  let current = new URL(url);
  const g = globalThis as Record<string, unknown>;
  g.location = {
    get hash() {
      return current.hash;
    },
    get pathname() {
      return current.pathname;
    },
    get search() {
      return current.search;
    },
  };
  g.history = {
    state: null,
    replaceState: (_state: unknown, _title: string, next: string) => {
      current = new URL(next, current.origin);
    },
  };
  return { address: () => current.href };
}

describe('consumeTokenFromFragment', () => {
  beforeEach(() => clearToken());
  afterEach(() => {
    const g = globalThis as Record<string, unknown>;
    delete g.location;
    delete g.history;
    clearToken();
  });

  it('takes an access_token and clears the address bar', () => {
    const page = visit('https://loom.example.com/t/1?x=1#access_token=abc.def.ghi&token_type=Bearer');
    expect(consumeTokenFromFragment()).toBe('abc.def.ghi');
    expect(getToken()).toBe('abc.def.ghi');
    expect(page.address()).toBe('https://loom.example.com/t/1?x=1');
  });

  it('never takes an id_token, and does not leave it in the address bar', () => {
    const page = visit('https://loom.example.com/#id_token=abc.def.ghi');
    expect(consumeTokenFromFragment()).toBeNull();
    expect(getToken()).toBeNull();
    expect(page.address()).toBe('https://loom.example.com/');
  });

  it('takes the access_token when both are there', () => {
    visit('https://loom.example.com/#id_token=id.id.id&access_token=at.at.at');
    expect(consumeTokenFromFragment()).toBe('at.at.at');
  });

  it('leaves other fragments alone', () => {
    const page = visit('https://loom.example.com/help#section-2');
    expect(consumeTokenFromFragment()).toBeNull();
    expect(page.address()).toBe('https://loom.example.com/help#section-2');
  });
});
