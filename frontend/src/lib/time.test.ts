import { describe, expect, it } from 'vitest';
import { dateGroup, groupByDate, shortTime } from './time';

describe('dates of messages and threads', () => {
  const now = new Date(2026, 5, 15, 12, 0);
  const at = (days: number, hour = 9) => new Date(2026, 5, 15 - days, hour, 30).toISOString();

  it('groups by day, week, month and year', () => {
    expect(dateGroup(at(0), now)).toBe('Today');
    expect(dateGroup(at(1), now)).toBe('Yesterday');
    expect(dateGroup(at(3), now)).toBe('Previous 7 days');
    expect(dateGroup(at(20), now)).toBe('Previous 30 days');
    expect(dateGroup(new Date(2025, 0, 3).toISOString(), now)).toBe('2025');
    expect(dateGroup('not a date', now)).toBe('Older');
    const groups = groupByDate([at(0), at(0, 8), at(1), at(3)], (x) => x, now);
    expect(groups.map((g) => [g.label, g.items.length])).toEqual([
      ['Today', 2],
      ['Yesterday', 1],
      ['Previous 7 days', 1],
    ]);
  });

  it('shows a time today, and a day before', () => {
    expect(shortTime(at(0), now)).not.toMatch(/Yesterday/);
    expect(shortTime(at(1), now)).toMatch(/^Yesterday /);
    expect(shortTime(null, now)).toBe('');
  });
});
