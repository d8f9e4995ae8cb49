import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import { SpdySession, type SpdyStream } from './spdy.js';
import { spdyDictionary } from './spdy-dictionary.js';

/** A server session on one end of a loopback connection; the test plays the client with raw frames. */
async function pair(): Promise<{ session: SpdySession; client: net.Socket; received: () => Buffer; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const session = new SpdySession(await accepted);
  let got = Buffer.alloc(0);
  client.on('data', (d) => {
    got = Buffer.concat([got, d]);
  });
  client.on('error', () => {});
  return {
    session,
    client,
    received: () => got,
    close: () => {
      client.destroy();
      server.close();
    },
  };
}

function control(type: number, flags: number, body: Buffer, version = 3): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(0x8000 | version, 0);
  h.writeUInt16BE(type, 2);
  h[4] = flags;
  h.writeUIntBE(body.length, 5, 3);
  return Buffer.concat([h, body]);
}

function dataFrame(id: number, flags: number, body: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(id, 0);
  h[4] = flags;
  h.writeUIntBE(body.length, 5, 3);
  return Buffer.concat([h, body]);
}

function headerBlock(headers: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  parts.push(u32(Object.keys(headers).length));
  for (const [k, v] of Object.entries(headers)) parts.push(u32(k.length), Buffer.from(k), u32(v.length), Buffer.from(v));
  return Buffer.concat(parts);
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check());
}

describe('SPDY/3.1 server session', () => {
  it('uses the SPDY/3 header dictionary byte for byte', () => {
    assert.equal(spdyDictionary.length, 1423);
    assert.equal(createHash('sha256').update(spdyDictionary).digest('hex'), '51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02');
  });

  it('replies to each stream, carries data both ways and half-closes with FIN', async () => {
    const { session, client, received, close } = await pair();
    const streams: SpdyStream[] = [];
    session.on('stream', (s: SpdyStream) => streams.push(s));
    // One deflate context across header blocks, as a client keeps it.
    const deflate = zlib.createDeflate({ dictionary: spdyDictionary });
    const compress = (b: Buffer) =>
      new Promise<Buffer>((resolve) => {
        const out: Buffer[] = [];
        const on = (d: Buffer) => out.push(d);
        deflate.on('data', on);
        deflate.write(b);
        deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          deflate.off('data', on);
          resolve(Buffer.concat(out));
        });
      });
    for (const [id, type] of [
      [1, 'error'],
      [3, 'stdout'],
    ] as const) {
      const head = Buffer.alloc(10);
      head.writeUInt32BE(id, 0);
      client.write(control(1, 0, Buffer.concat([head, await compress(headerBlock({ streamtype: type, requestid: '0' }))])));
    }
    await until(() => streams.length === 2);
    assert.deepEqual(
      streams.map((s) => [s.id, s.headers.streamtype]),
      [
        [1, 'error'],
        [3, 'stdout'],
      ],
    );
    // Two SYN_REPLY frames came back, each naming its stream.
    await until(() => received().length >= 2 * 12);
    const replies: number[] = [];
    for (let at = 0; at < received().length; ) {
      const f = received();
      if (f.readUInt16BE(at + 2) === 2) replies.push(f.readUInt32BE(at + 8) & 0x7fffffff);
      at += 8 + f.readUIntBE(at + 5, 3);
    }
    assert.deepEqual(replies, [1, 3]);
    let echoed = '';
    streams[1].on('data', (d: Buffer) => {
      echoed += d;
    });
    client.write(dataFrame(3, 0x01, Buffer.from('from client')));
    await until(() => echoed === 'from client' && streams[1].readableEnded);
    assert.ok(streams[1].writable, 'the client’s FIN half-closes: the stream still takes writes');
    const before = received().length;
    streams[1].end('to client');
    await until(() => received().length > before);
    const tail = received().subarray(before);
    assert.equal(tail.readUInt32BE(0), 3);
    assert.equal(tail.subarray(8, 8 + tail.readUIntBE(5, 3)).toString(), 'to client');
    close();
  });

  it('answers PING and drops a connection that speaks another version or sends a corrupt header block', async () => {
    const a = await pair();
    const ping = Buffer.alloc(4);
    ping.writeUInt32BE(7);
    a.client.write(control(6, 0, ping));
    await until(() => a.received().length === 12);
    assert.equal(a.received().readUInt32BE(8), 7);
    a.client.write(control(1, 0, Buffer.alloc(10), 2));
    await until(() => a.client.destroyed || a.client.readableEnded);
    a.close();

    const b = await pair();
    const head = Buffer.alloc(10);
    head.writeUInt32BE(1, 0);
    b.client.write(control(1, 0, Buffer.concat([head, Buffer.from('certainly not zlib')])));
    await until(() => b.client.destroyed || b.client.readableEnded);
    b.close();
  });
});
