import { EventEmitter, once } from 'node:events';
import { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import { spdyDictionary } from './spdy-dictionary.js';

/**
 * The server side of SPDY/3.1 framing (SPDY Protocol Draft 3.1) as kubectl's streams use it
 * (moby/spdystream): the client opens every stream with SYN_STREAM and waits for our SYN_REPLY;
 * data frames carry the bytes, FIN half-closes, RST_STREAM aborts; PING is echoed. Neither side
 * enforces flow-control windows, so WINDOW_UPDATE and SETTINGS are read and ignored. Header
 * blocks go through one zlib context per direction for the whole session, with the SPDY
 * dictionary, so every block is inflated (or deflated) in order.
 *
 * Events: 'stream' (SpdyStream) for each stream the client opens, 'close' when the transport ends.
 */
export class SpdySession extends EventEmitter {
  private readonly streams = new Map<number, SpdyStream>();
  private readonly inflate = new HeaderCodec(zlib.createInflate({ dictionary: spdyDictionary }));
  private readonly deflate = new HeaderCodec(zlib.createDeflate({ dictionary: spdyDictionary }));
  private pending: Buffer = Buffer.alloc(0);
  private inbound: Promise<void> = Promise.resolve();
  private outbound: Promise<void> = Promise.resolve();
  private lastStream = 0;
  private closed = false;

  constructor(private readonly socket: Duplex) {
    super();
    socket.on('data', (d: Buffer) => this.receive(d));
    socket.on('close', () => this.teardown());
    socket.on('error', () => this.teardown());
  }

  /** Ends the session once everything queued has been written: GOAWAY, then the transport closes. */
  close(): void {
    if (this.closed) return;
    this.send(() => control(7, 0, u32(this.lastStream), u32(0)));
    this.outbound = this.outbound.then(() => {
      this.socket.end();
    });
  }

  /** Queues a frame; frames leave in the order they were queued, each after the transport drained. */
  send(build: () => Buffer | Promise<Buffer>): Promise<void> {
    const next = this.outbound.then(async () => {
      if (this.closed) return;
      const buf = await build();
      if (!this.socket.write(buf)) await Promise.race([once(this.socket, 'drain'), once(this.socket, 'close')]);
    });
    this.outbound = next.catch(() => {});
    return next;
  }

  reset(id: number): void {
    this.streams.delete(id);
    // 5 = CANCEL: this side no longer wants the stream.
    void this.send(() => control(3, 0, u32(id), u32(5))).catch(() => {});
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  private receive(d: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, d]) : d;
    while (this.pending.length >= 8) {
      const length = this.pending.readUIntBE(5, 3);
      if (this.pending.length < 8 + length) break;
      const frameBuf = this.pending.subarray(0, 8 + length);
      this.pending = this.pending.subarray(8 + length);
      this.inbound = this.inbound.then(() => this.handle(frameBuf)).catch((err) => this.fail(err as Error));
    }
  }

  private async handle(f: Buffer): Promise<void> {
    if (this.closed) return;
    if (!(f[0] & 0x80)) {
      const stream = this.streams.get(f.readUInt32BE(0) & 0x7fffffff);
      stream?.receive(f.subarray(8), (f[4] & 0x01) !== 0);
      return;
    }
    const version = f.readUInt16BE(0) & 0x7fff;
    if (version !== 3) throw new Error(`SPDY version ${version} is not supported`);
    const type = f.readUInt16BE(2);
    const flags = f[4];
    switch (type) {
      case 1: {
        const id = f.readUInt32BE(8) & 0x7fffffff;
        const headers = parseHeaderBlock(await this.inflate.run(f.subarray(18)));
        this.lastStream = Math.max(this.lastStream, id);
        const stream = new SpdyStream(this, id, headers);
        this.streams.set(id, stream);
        await this.send(async () => control(2, 0, u32(id), await this.deflate.run(u32(0))));
        this.emit('stream', stream);
        if (flags & 0x01) stream.receive(Buffer.alloc(0), true);
        return;
      }
      case 2:
        await this.inflate.run(f.subarray(12));
        return;
      case 3:
        this.streams.get(f.readUInt32BE(8) & 0x7fffffff)?.aborted();
        return;
      case 6:
        void this.send(() => Buffer.from(f));
        return;
      case 7:
        this.socket.end();
        return;
      case 8:
        await this.inflate.run(f.subarray(12));
        return;
      default:
        // SETTINGS, WINDOW_UPDATE and unknown control frames carry nothing we act on.
        return;
    }
  }

  private fail(err: Error): void {
    this.emit('protocolError', err);
    this.socket.destroy();
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.streams.values()) s.aborted();
    this.streams.clear();
    this.inflate.close();
    this.deflate.close();
    this.emit('close');
  }
}

/** One SPDY stream as a Duplex: readable is what the client sends, writable goes back to it; end() sends FIN. */
export class SpdyStream extends Duplex {
  private finished = false;

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: Record<string, string>,
  ) {
    super({ allowHalfOpen: true });
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const parts: Buffer[] = [];
    for (let at = 0; at < chunk.length; at += maxDataFrame) parts.push(chunk.subarray(at, at + maxDataFrame));
    Promise.all(parts.map((p) => this.session.send(() => data(this.id, 0, p)))).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finished = true;
    this.session.send(() => data(this.id, 0x01, Buffer.alloc(0))).then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.finished) this.session.reset(this.id);
    else this.session.forget(this.id);
    cb(err);
  }

  /** Data from the client; `fin` ends the readable side. */
  receive(d: Buffer, fin: boolean): void {
    if (d.length) this.push(d);
    if (fin) this.push(null);
  }

  /** The client reset the stream, or the session ended. */
  aborted(): void {
    this.finished = true;
    this.destroy();
  }
}

const maxDataFrame = 1 << 20;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function control(type: number, flags: number, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body);
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8003, 0);
  head.writeUInt16BE(type, 2);
  head[4] = flags;
  head.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([head, payload]);
}

function data(id: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(id & 0x7fffffff, 0);
  head[4] = flags;
  head.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([head, payload]);
}

/** A decompressed SPDY/3 header block: a count, then length-prefixed names and values. Names are lower case. */
export function parseHeaderBlock(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  if (b.length < 4) throw new Error('truncated SPDY header block');
  const count = b.readUInt32BE(0);
  let at = 4;
  const take = () => {
    if (at + 4 > b.length) throw new Error('truncated SPDY header block');
    const n = b.readUInt32BE(at);
    at += 4;
    if (at + n > b.length) throw new Error('truncated SPDY header block');
    const s = b.subarray(at, at + n).toString('latin1');
    at += n;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const name = take().toLowerCase();
    // Several values of one header are NUL-separated; the streams' headers have one each.
    out[name] = take().split('\0')[0];
  }
  return out;
}

/** One direction's zlib context: each call feeds a block and takes what a sync flush yields. */
class HeaderCodec {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly z: zlib.Inflate | zlib.Deflate) {
    z.on('error', () => {});
  }

  run(input: Buffer): Promise<Buffer> {
    const next = this.chain.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          const chunks: Buffer[] = [];
          const drain = () => {
            for (let c = this.z.read() as Buffer | null; c !== null; c = this.z.read() as Buffer | null) chunks.push(c);
          };
          const onError = (err: Error) => reject(new Error(`SPDY header block: ${err.message}`));
          this.z.on('readable', drain);
          this.z.once('error', onError);
          this.z.write(input);
          this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
            drain();
            this.z.off('readable', drain);
            this.z.off('error', onError);
            resolve(Buffer.concat(chunks));
          });
        }),
    );
    this.chain = next.catch(() => {});
    return next;
  }

  close(): void {
    this.z.destroy();
  }
}
