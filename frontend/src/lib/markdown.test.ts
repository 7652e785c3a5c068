import { describe, expect, it } from 'vitest';
import { isLocalImage } from './markdown';

const ORIGIN = 'https://loom.example.com';

describe('isLocalImage', () => {
  it('loads images of the page origin and data: images', () => {
    expect(isLocalImage('/favicon.svg', ORIGIN)).toBe(true);
    expect(isLocalImage('assets/a.png', ORIGIN)).toBe(true);
    expect(isLocalImage(`${ORIGIN}/x.png`, ORIGIN)).toBe(true);
    expect(isLocalImage('data:image/png;base64,iVBORw0KGgo=', ORIGIN)).toBe(true);
    expect(isLocalImage(' DATA:image/gif;base64,R0lGOD== ', ORIGIN)).toBe(true);
  });

  it('never loads anything else', () => {
    expect(isLocalImage('https://evil.example/?q=secret', ORIGIN)).toBe(false);
    expect(isLocalImage('//evil.example/x.png', ORIGIN)).toBe(false);
    expect(isLocalImage('http://loom.example.com/x.png', ORIGIN)).toBe(false); // other scheme
    expect(isLocalImage('https://loom.example.com:8443/x.png', ORIGIN)).toBe(false);
    expect(isLocalImage('javascript:alert(1)', ORIGIN)).toBe(false);
    expect(isLocalImage('data:text/html,<b>x</b>', ORIGIN)).toBe(false);
    expect(isLocalImage('blob:https://loom.example.com/1', ORIGIN)).toBe(false);
    expect(isLocalImage('', ORIGIN)).toBe(false);
    expect(isLocalImage('/x.png', '')).toBe(false); // no origin known: nothing is local
  });
});
