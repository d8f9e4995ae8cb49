import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../observe/errors.js';
import { lastScheduleBetween, matches, nextSchedule, parseSchedule } from './cron.js';

const at = (iso: string) => Date.parse(iso);

test('fields, lists, ranges, steps and names', () => {
  const s = parseSchedule('*/15 9-17 * JAN-MAR MON-FRI');
  assert.ok(matches(s, at('2026-01-05T09:30:00Z'))); // a Monday
  assert.ok(!matches(s, at('2026-01-04T09:30:00Z'))); // a Sunday
  assert.ok(!matches(s, at('2026-01-05T09:31:00Z')));
  assert.ok(!matches(s, at('2026-04-06T09:30:00Z')));
  assert.ok(matches(parseSchedule('@hourly'), at('2026-11-23T05:00:00Z')));
  assert.ok(matches(parseSchedule('0 0 * * 7'), at('2026-11-22T00:00:00Z')), '7 is Sunday too');
  // Both day fields restricted: either matches.
  const either = parseSchedule('0 0 1 * MON');
  assert.ok(matches(either, at('2026-11-23T00:00:00Z')) && matches(either, at('2026-12-01T00:00:00Z')));
  for (const bad of ['* * *', '61 * * * *', '*/0 * * * *', '5-1 * * * *', 'x * * * *']) assert.throws(() => parseSchedule(bad), (e) => isCode(e, 'Invalid'), bad);
});

test('time zones and searching', () => {
  const s = parseSchedule('0 9 * * *');
  assert.ok(matches(s, at('2026-11-23T08:00:00Z'), 'Europe/Berlin'));
  assert.ok(!matches(s, at('2026-11-23T09:00:00Z'), 'Europe/Berlin'));
  assert.equal(nextSchedule(s, at('2026-11-23T08:30:00Z'), 'Europe/Berlin'), at('2026-11-24T08:00:00Z'));
  assert.equal(lastScheduleBetween(parseSchedule('*/5 * * * *'), at('2026-11-23T10:00:00Z'), at('2026-11-23T10:12:30Z')), at('2026-11-23T10:10:00Z'));
  assert.equal(lastScheduleBetween(parseSchedule('0 0 1 1 *'), at('2026-11-23T10:00:00Z'), at('2026-11-23T10:12:30Z')), undefined);
});
