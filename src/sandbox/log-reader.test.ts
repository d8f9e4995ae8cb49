import assert from 'node:assert/strict';
import { appendFileSync, unlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readLog, rfc3339Nano, tailLog } from './log-reader.js';

describe('log times with --timestamps', () => {
  it('are printed as Go prints time.RFC3339Nano: UTC with Z, no trailing zeros in the fraction', () => {
    assert.equal(rfc3339Nano('2026-11-23T23:13:22.516620550+00:00'), '2026-11-23T23:13:22.51662055Z');
    assert.equal(rfc3339Nano('2026-11-23T23:13:22.000000000Z'), '2026-11-23T23:13:22Z');
    assert.equal(rfc3339Nano('2026-11-24T01:13:22.5+02:00'), '2026-11-23T23:13:22.5Z');
    assert.equal(rfc3339Nano('2026-11-23T20:13:22.25-03:00'), '2026-11-23T23:13:22.25Z');
    assert.equal(rfc3339Nano('not a time'), 'not a time', 'what it cannot read passes through');
  });
});

describe('following a log', () => {
  it('still delivers the last lines when the log is removed as the run ends (a deleted pod)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-log-'));
    const file = path.join(dir, 'log');
    await writeFile(file, '2026-11-23T23:00:00.000000000+00:00 stdout F tick 1\n');
    let over = false;
    const stream = await readLog(file, { follow: true }, async () => over, new AbortController().signal);
    const chunks: string[] = [];
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (d: Buffer | string) => {
        chunks.push(String(d));
        if (chunks.length === 1) {
          // The run's last words, then the run ends and its files go, all before the next read.
          appendFileSync(file, '2026-11-23T23:00:01.000000000+00:00 stdout F got TERM\n');
          unlinkSync(file);
          over = true;
        }
      });
      stream.on('end', resolve);
    });
    await ended;
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(chunks, ['tick 1\n', 'got TERM\n']);
  });
});

describe('tailing a log for an attached client', () => {
  it('starts at the end as it is, passes partial lines at once and keeps CR LF, whatever the record times say', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-log-'));
    const file = path.join(dir, 'log');
    await writeFile(file, '2026-11-23T23:00:00.000000000+00:00 stdout F before the attach\n');
    let over = false;
    const stream = await tailLog(file, async () => over, new AbortController().signal);
    const chunks: string[] = [];
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (d: Buffer) => {
        chunks.push(d.toString());
        if (chunks.length === 1) {
          // The clock stepped back: these records are older than the attach, and still new.
          appendFileSync(file, '2020-01-01T00:00:00.000000000+00:00 stdout F /dev/pts/0\r\n2020-01-01T00:00:00.000000000+00:00 stdout P / # \n');
          over = true;
        }
      });
      stream.on('end', resolve);
    });
    // A shell's prompt: no newline follows, and it must show anyway.
    appendFileSync(file, '2026-11-23T23:00:01.000000000+00:00 stdout P / # \n');
    await ended;
    await rm(dir, { recursive: true, force: true });
    assert.equal(chunks.join(''), '/ # /dev/pts/0\r\n/ # ');
  });

  it('waits for a log not written yet, and stops on abort', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-log-'));
    const file = path.join(dir, 'log');
    const abort = new AbortController();
    const stream = await tailLog(file, async () => false, abort.signal);
    let text = '';
    const ended = new Promise<void>((resolve) => {
      stream.on('data', (d: Buffer) => {
        text += d.toString();
        abort.abort();
      });
      stream.on('end', resolve);
    });
    await writeFile(file, '2026-11-23T23:00:00.000000000+00:00 stdout F first\n');
    await ended;
    await rm(dir, { recursive: true, force: true });
    assert.equal(text, 'first\n');
  });
});
