import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { GuestChannel } from './guest-channel.js';

/** A frame as the guest agent writes it: u32 length, u32 stream id, u8 type, payload. */
function frame(id: number, type: number, payload = ''): Buffer {
  const body = Buffer.from(payload);
  const h = Buffer.alloc(9);
  h.writeUInt32BE(body.length, 0);
  h.writeUInt32BE(id, 4);
  h.writeUInt8(type, 8);
  return Buffer.concat([h, body]);
}

/**
 * A stand-in guest agent on a unix socket (the real one needs a VM; microvm.test.ts drives it):
 * answers HELLO with READY, LIST with `listed` and RESUME with `resume(stream, payload)`, and
 * writes `early` frames first, as a guest that was blocked writing to a host that went away does
 * on the next connection.
 */
async function fakeGuest(listed: string, early: Buffer[] = [], resume: (id: number, asked: string) => Buffer[] = () => []) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-guest-'));
  const sock = path.join(dir, 'agent.sock');
  const server = net.createServer((c) => {
    for (const f of early) c.write(f);
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUInt32BE(0)) {
        const [len, id, type] = [buf.readUInt32BE(0), buf.readUInt32BE(4), buf.readUInt8(8)];
        const payload = buf.subarray(9, 9 + len).toString();
        buf = buf.subarray(9 + len);
        if (type === 1) c.write(frame(0, 16, 'fake'));
        if (type === 9) c.write(frame(0, 22, listed));
        if (type === 10) for (const f of resume(id, payload)) c.write(f);
      }
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  const close = async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  };
  return { sock, close };
}

test('adopting a stream of an earlier host: what came before RESUMED is dropped, the resent output and the exit are delivered', async () => {
  const asked: string[] = [];
  // Before the request the guest flushes what it was blocked on (dropped: it comes again), then
  // answers from the offsets asked for, then ends the stream.
  const resend = (id: number, from: string) => {
    asked.push(`${id} ${from}`);
    return [frame(7, 18, 'ted\n'), frame(7, 21, '3'), frame(7, 23, '3 0'), frame(7, 18, 'ted\n'), frame(7, 18, 'more\n'), frame(7, 19, 'err'), frame(7, 21, '4')];
  };
  const g = await fakeGuest('7 120 1 4\n', [frame(7, 18, 'waited\n'), frame(9, 18, 'not claimed\n')], resend);
  const ch = await GuestChannel.open(g.sock, 2000);
  try {
    const list = await ch.streams();
    assert.deepEqual(list, [{ id: 7, pid: 120, exited: true, code: 4 }]);
    const p = ch.adopt([{ id: 7, pid: 120, stdin: false, tty: false, from: { stdout: 3, stderr: 0 } }]).get(7);
    assert.ok(p);
    assert.equal(await p.started, 120);
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    p.stderr?.on('data', (d: Buffer) => {
      err += d;
    });
    assert.deepEqual(await p.resumed, { stdout: 0, stderr: 0 });
    assert.equal((await p.done).exitCode, 4);
    assert.deepEqual(asked, ['7 3 0']);
    assert.equal(out, 'ted\nmore\n');
    assert.equal(err, 'err');
  } finally {
    ch.close();
    await g.close();
  }
});

test('a resumed stream whose guest no longer has the output asked for says how much was lost', async () => {
  const g = await fakeGuest('3 50 0 0\n', [], () => [frame(3, 23, '900 20'), frame(3, 18, 'late')]);
  const ch = await GuestChannel.open(g.sock, 2000);
  try {
    await ch.streams();
    const p = ch.adopt([{ id: 3, pid: 50, stdin: false, tty: false, from: { stdout: 100, stderr: 20 } }]).get(3);
    assert.deepEqual(await p?.resumed, { stdout: 800, stderr: 0 });
  } finally {
    ch.close();
    await g.close();
  }
});

test('a hostile LIST answer is ignored line by line and cannot derail stream ids', async () => {
  const g = await fakeGuest('x y z\n-4 1 0 0\n4294967295 1 0 0\n12 abc 0 0\n5 33 1 137\n\n99999999999 1 0 0');
  const ch = await GuestChannel.open(g.sock, 2000);
  try {
    assert.deepEqual(await ch.streams(), [{ id: 5, pid: 33, exited: true, code: 137 }]);
    const p = ch.spawn({ argv: ['true'] });
    assert.equal(p.id, 6, 'new streams get ids above the listed ones');
  } finally {
    ch.close();
    await g.close();
  }
});
