import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rfc3339Nano } from './log-reader.js';

describe('log times with --timestamps', () => {
  it('are printed as Go prints time.RFC3339Nano: UTC with Z, no trailing zeros in the fraction', () => {
    assert.equal(rfc3339Nano('2026-11-23T23:13:22.516620550+00:00'), '2026-11-23T23:13:22.51662055Z');
    assert.equal(rfc3339Nano('2026-11-23T23:13:22.000000000Z'), '2026-11-23T23:13:22Z');
    assert.equal(rfc3339Nano('2026-11-24T01:13:22.5+02:00'), '2026-11-23T23:13:22.5Z');
    assert.equal(rfc3339Nano('2026-11-23T20:13:22.25-03:00'), '2026-11-23T23:13:22.25Z');
    assert.equal(rfc3339Nano('not a time'), 'not a time', 'what it cannot read passes through');
  });
});
