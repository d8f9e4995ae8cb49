import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readLog } from './log-reader.js';
import { LogWriter } from './log-writer.js';

test('a log holds the output byte for byte: measure() counts what was written, reading strips only a terminal CR', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-log-'));
  try {
    const file = path.join(dir, 'log');
    const w = new LogWriter(file);
    const out = [Buffer.from('one\r\ntw'), Buffer.from([0xe2, 0x82]), Buffer.from([0xac, 0x0a, 0xff, 0x0a]), Buffer.from('\n\npartial')];
    const err = [Buffer.from('e1\n'), Buffer.alloc(0), Buffer.from('e2')];
    for (const b of out) w.write('stdout', b);
    for (const b of err) w.write('stderr', b);
    await w.close();
    assert.deepEqual(await LogWriter.measure(file), { stdout: Buffer.concat(out).length, stderr: Buffer.concat(err).length });
    // A line cut off by a crash (no newline) is not counted: the guest sends it again.
    await appendFile(file, '2026-01-01T00:00:00.000000000Z stdout F cut');
    assert.deepEqual(await LogWriter.measure(file), { stdout: Buffer.concat(out).length, stderr: Buffer.concat(err).length });
    const text = await new Promise<string>((resolve) => {
      let s = '';
      readLog(file, {}, async () => true, new AbortController().signal).then((r) => r.on('data', (d) => (s += d)).on('end', () => resolve(s)));
    });
    assert.equal(text, 'one\ntw€\n\ufffd\n\n\npartiale1\ne2', 'a multi-byte character split between writes reads whole');
    assert.deepEqual(await LogWriter.measure(path.join(dir, 'none')), { stdout: 0, stderr: 0 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
