import { describe, expect, it } from 'vitest';
import { errorFor, formatDetail } from './client';
import { ingestConfig } from './upload';

describe('error details', () => {
  it('formats FastAPI details', () => {
    expect(formatDetail('Thread not found')).toBe('Thread not found');
    expect(
      formatDetail([
        { loc: ['body', 'config', 'configurable', 'model'], msg: 'unknown model', type: 'value_error' },
        { loc: ['body', 'name'], msg: 'Field required', type: 'missing' },
      ]),
    ).toBe('config.configurable.model: unknown model\nname: Field required');
    expect(formatDetail({ message: 'x' })).toBe('x');
    expect(formatDetail(null)).toBeNull();
  });

  it('falls back to a message per status', () => {
    expect(errorFor(413, null).message).toMatch(/too large/);
    expect(errorFor(415, {}).message).toMatch(/not supported/);
    expect(errorFor(409, { detail: 'busy' }).message).toBe('busy');
    expect(errorFor(418, null).message).toMatch(/418/);
    expect(errorFor(404, { detail: 'gone' }).status).toBe(404);
  });

  it('builds the ingest config', () => {
    expect(JSON.parse(ingestConfig({ thread_id: 't1' }))).toEqual({ configurable: { thread_id: 't1' } });
    expect(JSON.parse(ingestConfig({ assistant_id: 'a1' }))).toEqual({ configurable: { assistant_id: 'a1' } });
  });
});

describe('non-JSON error bodies', () => {
  it('uses short plain text but not HTML pages', () => {
    expect(errorFor(500, 'Internal Server Error').message).toBe('Internal Server Error');
    expect(errorFor(502, '<html><body>Bad gateway</body></html>').message).toMatch(/model provider/);
  });
});
