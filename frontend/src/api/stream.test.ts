import { describe, expect, it } from 'vitest';
import {
  applyPatches,
  contentText,
  cutShort,
  turnsByAnswer,
  mergeUnconfirmed,
  pendingToolCalls,
  stateMessages,
  toolCallsOf,
  toWire,
} from './stream';
import type { Message } from './types';

const human: Message = { id: 'h1', type: 'human', content: 'hi' };

describe('applyPatches', () => {
  it('inserts a new message and replaces one with the same id', () => {
    let list = applyPatches([human], [{ id: 'a1', type: 'ai', content: '' }]);
    expect(list.map((m) => m.id)).toEqual(['h1', 'a1']);
    list = applyPatches(list, [{ id: 'a1', type: 'ai', content: 'Hello there' }]);
    expect(list).toHaveLength(2);
    expect(list[1]!.content).toBe('Hello there');
  });

  it('appends deltas in order', () => {
    let list = applyPatches([human], [{ id: 'a1', type: 'ai', content: 'He' }]);
    list = applyPatches(list, [
      { id: 'a1', delta: 'll' },
      { id: 'a1', delta: 'o' },
    ]);
    expect(list[1]!.content).toBe('Hello');
  });

  it('drops a message a crashed attempt left half written', () => {
    let list = applyPatches([human], [{ id: 'a1', type: 'ai', content: 'Half' }]);
    list = applyPatches(list, [
      { id: 'a1', removed: true },
      { id: 'a2', type: 'ai', content: 'Whole' },
      { id: 'a2', delta: ' reply' },
      { id: 'gone', removed: true },
    ]);
    expect(list.map((m) => [m.id, m.content])).toEqual([
      ['h1', 'hi'],
      ['a2', 'Whole reply'],
    ]);
  });

  it('starts an AI message for a delta with an unknown id', () => {
    const list = applyPatches([], [{ id: 'x', delta: 'Hi' }]);
    expect(list).toEqual([{ id: 'x', type: 'ai', content: 'Hi' }]);
  });

  it('appends deltas to content given as parts', () => {
    const start: Message = { id: 'a', type: 'ai', content: [{ type: 'text', text: 'A' }] };
    let list = applyPatches([start], [{ id: 'a', delta: 'B' }]);
    expect(list[0]!.content).toEqual([{ type: 'text', text: 'AB' }]);
    const withImage: Message = { id: 'b', type: 'ai', content: [{ type: 'image_url' }] };
    list = applyPatches([withImage], [{ id: 'b', delta: 'C' }]);
    expect(list[0]!.content).toEqual([{ type: 'image_url' }, { type: 'text', text: 'C' }]);
  });

  it('does not mutate its inputs and keeps unchanged messages identical', () => {
    const a: Message = { id: 'a', type: 'ai', content: 'x' };
    const input = [human, a];
    const snapshot = JSON.parse(JSON.stringify(input));
    const out = applyPatches(input, [{ id: 'a', delta: 'y' }]);
    expect(input).toEqual(snapshot);
    expect(out[0]).toBe(human);
    expect(out[1]).not.toBe(a);
  });

  it('handles a whole-list payload (OpenGPTs format) the same way', () => {
    const payload = [
      { id: 'h1', type: 'human', content: 'hi' },
      { id: 'a1', type: 'ai', content: 'Hel' },
    ];
    let list = applyPatches([human], payload);
    list = applyPatches(list, [payload[0], { ...payload[1], content: 'Hello' }]);
    expect(list.map((m) => [m.id, m.content])).toEqual([
      ['h1', 'hi'],
      ['a1', 'Hello'],
    ]);
  });

  it('replaces a pending local human message echoed under another id', () => {
    const local: Message = { id: 'local-1', type: 'human', content: 'hello', pending: true };
    const list = applyPatches([local], [{ id: 'srv-1', type: 'human', content: 'hello' }]);
    expect(list).toEqual([{ id: 'srv-1', type: 'human', content: 'hello' }]);
  });

  it('ignores patches it does not understand', () => {
    const list = applyPatches([human], [null, 3, 'x', { foo: 1 }, { id: 'h1' }]);
    expect(list).toEqual([human]);
  });

  it('gives ids to messages without one and normalises tool calls', () => {
    const list = applyPatches(
      [],
      [{ type: 'ai', content: null, tool_calls: [{ id: 'c1', name: 'search', args: '{"q":1}' }] }],
    );
    expect(list[0]!.id).toMatch(/^anonymous-/);
    expect(list[0]!.content).toBe('');
    expect(list[0]!.tool_calls).toEqual([{ id: 'c1', name: 'search', args: { q: 1 } }]);
  });
});

describe('thread state helpers', () => {
  it('reads values as a list or as {messages}', () => {
    expect(stateMessages({ values: [human] })).toEqual([human]);
    expect(stateMessages({ values: { messages: [human] } })).toEqual([human]);
    expect(stateMessages({ values: null })).toEqual([]);
    expect(stateMessages(null)).toEqual([]);
  });

  const ai: Message = {
    id: 'a1',
    type: 'ai',
    content: '',
    tool_calls: [
      { id: 'c1', name: 'wikipedia', args: { query: 'x' } },
      { id: 'c2', name: 'search', args: {} },
    ],
  };

  it('finds tool calls waiting for approval', () => {
    expect(pendingToolCalls([human, ai], ['action'])?.calls.map((c) => c.id)).toEqual([
      'c1',
      'c2',
    ]);
    expect(pendingToolCalls([human, ai], [])).toBeNull();
    const answered: Message = { id: 't1', type: 'tool', content: 'r', tool_call_id: 'c1' };
    expect(pendingToolCalls([human, ai, answered], ['tools'])?.calls.map((c) => c.id)).toEqual([
      'c2',
    ]);
    const all: Message = { id: 't2', type: 'tool', content: 'r', tool_call_id: 'c2' };
    expect(pendingToolCalls([human, ai, answered, all], ['action'])).toBeNull();
    expect(pendingToolCalls([human], ['agent'])).toBeNull();
  });

  it('reads OpenAI-style tool calls from additional_kwargs', () => {
    const raw: Message = {
      id: 'a',
      type: 'ai',
      content: '',
      additional_kwargs: {
        tool_calls: [{ id: 'c9', type: 'function', function: { name: 'f', arguments: '{"a":2}' } }],
      },
    };
    expect(toolCallsOf(raw)).toEqual([{ id: 'c9', name: 'f', args: { a: 2 } }]);
  });

  it('keeps unconfirmed local messages after a reload', () => {
    const local: Message = { id: 'l1', type: 'human', content: 'new', pending: true };
    expect(mergeUnconfirmed([human], [human, local])).toEqual([human, local]);
    expect(mergeUnconfirmed([human, { ...local, pending: undefined }], [local])).toHaveLength(2);
  });

  it('strips client-only fields before sending', () => {
    expect(toWire({ id: 'x', type: 'human', content: 'a', pending: true })).toEqual({
      id: 'x',
      type: 'human',
      content: 'a',
    });
  });

  it('reads text of string and part contents', () => {
    expect(contentText('a')).toBe('a');
    expect(contentText([{ type: 'text', text: 'a' }, { type: 'image_url' }, { type: 'text', text: 'b' }])).toBe('ab');
  });
});

describe('mergeUnconfirmed after a stop', () => {
  it('keeps the partial answer when asked to', () => {
    const partial: Message = { id: 'a9', type: 'ai', content: 'Half an ans' };
    expect(mergeUnconfirmed([human], [human, partial])).toEqual([human]);
    expect(mergeUnconfirmed([human], [human, partial], true)).toEqual([human, partial]);
  });
});

describe('chunk types', () => {
  it('reads AIMessageChunk as an AI message', () => {
    const list = applyPatches([], [{ id: 'c', type: 'AIMessageChunk', content: 'x' }]);
    expect(list[0]!.type).toBe('ai');
  });
});

describe('turns, citations and cut replies', () => {
  const passage = { filename: 'notes.txt', source: 'notes.txt', text: 'The cat is Biscuit.', page: null, score: 0.9 };
  const thread: Message[] = [
    { id: 'h1', type: 'human', content: 'cat?' },
    { id: 'a1', type: 'ai', content: '', tool_calls: [{ id: 'c1', name: 'retrieval', args: { query: 'cat' } }] },
    { id: 't1', type: 'tool', name: 'retrieval', tool_call_id: 'c1', content: '<document>…</document>', artifact: [passage] },
    { id: 'a2', type: 'ai', content: 'Biscuit [1].' },
    { id: 'h2', type: 'human', content: 'thanks' },
    { id: 'a3', type: 'ai', content: 'You are welc', response_metadata: { loom_status: 'stopped' } },
  ];

  it('finds each turn’s answer, where a regenerated reply forks, and the passages it used', () => {
    const turns = turnsByAnswer(thread);
    expect([...turns.keys()]).toEqual(['a2', 'a3']);
    expect(turns.get('a2')).toEqual({
      firstReplyId: 'a1',
      answerId: 'a2',
      passages: [{ filename: 'notes.txt', text: 'The cat is Biscuit.', page: null, score: 0.9 }],
    });
    expect(turns.get('a3')!.firstReplyId).toBe('a3');
    expect(turns.get('a3')!.passages).toEqual([]);
  });

  it('tells replies cut short', () => {
    expect(cutShort(thread[5]!)).toBe('stopped');
    expect(cutShort({ id: 'x', type: 'ai', content: 'a', response_metadata: { loom_status: 'failed' } })).toBe('failed');
    expect(cutShort(thread[3]!)).toBeNull();
  });
});
