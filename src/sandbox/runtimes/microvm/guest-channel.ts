import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Readable, Writable } from 'node:stream';
import { KubicleError } from '../../../observe/errors.js';
import type { ExecResult } from '../../api/types.js';
import type { StreamedProcess } from '../../runtime.js';

/** Frame types of the guest agent's protocol; guest/agent.c is the other half and says what each means. */
const T = { HELLO: 1, SPAWN: 2, STDIN: 3, STDIN_EOF: 4, RESIZE: 5, SIGNAL: 6, CONNECT: 7, SEED: 8, LIST: 9, RESUME: 10, RELEASE: 11, READY: 16, STARTED: 17, STDOUT: 18, STDERR: 19, ERROR: 20, EXIT: 21, LISTED: 22, RESUMED: 23 } as const;
const HEADER = 9;
const MAX_DATA = 64 * 1024;
/** The largest frame the guest agent accepts (MAX_FRAME in guest/agent.c). */
const MAX_FRAME = 1 << 20;

/** What the guest agent runs: a command in a root (a container's mount), as a user, maybe on a terminal. */
export interface GuestCommand {
  argv: string[];
  env?: string[];
  /** A directory in the guest to chroot into; the initramfs itself when absent. */
  root?: string;
  /** A cgroup (v2) directory in the guest to run in. */
  cgroup?: string;
  cwd?: string;
  uid?: number;
  gid?: number;
  groups?: number[];
  tty?: boolean;
  stdin?: boolean;
  rows?: number;
  cols?: number;
  /** A container's main process: signals follow the rules of a PID namespace's init. */
  init?: boolean;
  /**
   * The guest keeps the stream's recent output, and the stream past its exit until release(),
   * so that a host that restarts can take it over without a gap (adopt()).
   */
  keep?: boolean;
}

/** Byte offsets into a stream's stdout and stderr. */
export interface StreamOffsets {
  stdout: number;
  stderr: number;
}

/** A stream the guest agent has, as LIST reports it. */
export interface GuestStreamInfo {
  id: number;
  /** 0 for a connection. */
  pid: number;
  exited: boolean;
  code: number;
}

/** One process or connection in the guest, as the host sees it. */
export interface GuestProcess extends StreamedProcess {
  /** The stream's id on this guest: how a later connection finds it again (streams(), adopt()). */
  id: number;
  /** Resolves with the guest pid once started; rejects with the reason it could not start. */
  started: Promise<number>;
  /** Sends a signal to the process's group. */
  signal(sig: number): void;
  /**
   * For an adopted stream: how many bytes of each output the guest no longer had when asked to
   * send them again (0 and 0 when nothing was lost). Resolves before any output is delivered.
   */
  resumed?: Promise<StreamOffsets>;
}

interface Stream {
  stdout: Readable;
  stderr: Readable;
  started: { resolve: (pid: number) => void; reject: (err: Error) => void };
  error?: string;
  finish: (r: ExecResult) => void;
  /** Adopted and asked to resend: frames until RESUMED are what the guest sends again after it. */
  resuming?: { asked: StreamOffsets; resolve: (lost: StreamOffsets) => void };
}

/**
 * The host's end of the guest agent's channel: the virtio-serial port that QEMU exposes as a unix
 * socket. Frames (guest/agent.c) carry many processes' streams at once, each by a stream id.
 * When the connection drops (the guest died or QEMU exited) every open process ends with 255.
 */
export class GuestChannel {
  private readonly byId = new Map<number, Stream>();
  private nextId = 1;
  private buffered: Buffer = Buffer.alloc(0);
  private closed = false;
  private onListed?: (text: string) => void;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => this.receive(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const [id, s] of this.byId) this.end(id, s, { exitCode: 255, message: s.error ?? 'the microvm went away' });
    });
  }

  /**
   * Connects to the agent and waits for its greeting; the agent answers only once the guest has
   * booted, so this is also how boot completion is seen. Unavailable after `timeoutMs`, or as
   * soon as `signal` aborts (its QEMU is gone): the port takes one host at a time, so an attempt
   * nobody waits for must not go on and take it.
   */
  static async open(socketPath: string, timeoutMs: number, signal?: AbortSignal): Promise<GuestChannel> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const socket = net.connect(socketPath);
      const abort = () => socket.destroy();
      signal?.addEventListener('abort', abort, { once: true });
      try {
        await once(socket, 'connect');
        const channel = new GuestChannel(socket);
        await channel.hello(Math.max(0, deadline - Date.now()));
        return channel;
      } catch (err) {
        socket.destroy();
        if (signal?.aborted) throw new KubicleError('Unavailable', `the microvm's agent did not answer: ${String(signal.reason?.message ?? signal.reason)}`);
        if (Date.now() >= deadline) throw new KubicleError('Unavailable', `the microvm's agent did not answer within ${timeoutMs} ms: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 20));
      } finally {
        signal?.removeEventListener('abort', abort);
      }
    }
  }

  private hello(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      // Re-sent until answered: the guest's port opens only once its agent runs.
      const send = () => this.send(0, T.HELLO);
      const every = setInterval(send, 100);
      const timer = setTimeout(() => done(new Error('no greeting')), timeoutMs);
      const done = (err?: Error) => {
        clearInterval(every);
        clearTimeout(timer);
        this.onReady = undefined;
        if (err) reject(err);
        else resolve();
      };
      this.onReady = () => done();
      this.socket.once('close', () => done(new Error('the connection closed')));
      send();
    });
  }

  private onReady?: () => void;

  get alive(): boolean {
    return !this.closed;
  }

  close(): void {
    this.socket.destroy();
  }

  /**
   * Gives the guest the host's clock and fresh entropy, which it reseeds its random generator
   * with. A guest restored from a template starts with the template's clock and generator state,
   * shared with every sibling restored from it: this must come before anything the sandbox runs.
   */
  seed(): void {
    const now = Date.now();
    const clock = Buffer.from(`${Math.floor(now / 1000)} ${(now % 1000) * 1_000_000}\n`);
    this.send(0, T.SEED, Buffer.concat([clock, randomBytes(64)]));
  }

  /** Starts a command; the process's `started` says whether it really ran. */
  spawn(cmd: GuestCommand): GuestProcess {
    const fields: string[] = [];
    if (cmd.root) fields.push(`root=${cmd.root}`);
    if (cmd.cgroup) fields.push(`cgroup=${cmd.cgroup}`);
    if (cmd.cwd) fields.push(`cwd=${cmd.cwd}`);
    fields.push(`uid=${cmd.uid ?? 0}`, `gid=${cmd.gid ?? 0}`, `tty=${cmd.tty ? 1 : 0}`, `stdin=${cmd.stdin ? 1 : 0}`);
    for (const g of cmd.groups ?? []) fields.push(`group=${g}`);
    if (cmd.rows) fields.push(`rows=${cmd.rows}`);
    if (cmd.cols) fields.push(`cols=${cmd.cols}`);
    if (cmd.init) fields.push('init=1');
    if (cmd.keep) fields.push('keep=1');
    for (const e of cmd.env ?? []) fields.push(`env=${e}`);
    for (const a of cmd.argv) fields.push(`arg=${a}`);
    if (fields.some((f) => f.includes('\0'))) throw new KubicleError('Invalid', 'a command, argument or variable holds a NUL byte');
    const payload = Buffer.from(fields.join('\0'));
    // The agent takes frames up to 1 MiB and at most 255 arguments and 255 variables.
    if (payload.length > MAX_FRAME || cmd.argv.length > 255 || (cmd.env?.length ?? 0) > 255) throw new KubicleError('Invalid', 'the command and its environment are too large for a microvm (at most 1 MiB, 255 arguments, 255 variables)');
    return this.open(T.SPAWN, payload, !!cmd.stdin, !!cmd.tty);
  }

  /** A TCP connection to `port` on the guest's loopback (port-forward). */
  connect(port: number): GuestProcess {
    return this.open(T.CONNECT, Buffer.from(String(port)), true, false);
  }

  /** Runs a command to its end and collects its output (stdout and stderr together). */
  async run(cmd: GuestCommand, input?: Buffer, timeoutMs = 30_000): Promise<{ exitCode: number; output: string }> {
    const p = this.spawn({ ...cmd, stdin: input !== undefined });
    const chunks: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => chunks.push(d));
    p.stderr?.on('data', (d: Buffer) => chunks.push(d));
    if (input !== undefined) p.stdin?.end(input);
    const timer = setTimeout(() => p.signal(9), timeoutMs);
    const r = await p.done;
    clearTimeout(timer);
    const output = Buffer.concat(chunks).toString();
    return { exitCode: r.exitCode, output: r.message && !output ? r.message : output };
  }

  /**
   * The streams the agent has, started by this connection or an earlier one (a host agent that
   * restarted while its guests ran). New streams get ids above all of them.
   */
  streams(): Promise<GuestStreamInfo[]> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new KubicleError('Unavailable', 'the microvm went away'));
      const gone = () => reject(new KubicleError('Unavailable', 'the microvm went away'));
      this.socket.once('close', gone);
      this.onListed = (text) => {
        this.socket.off('close', gone);
        this.onListed = undefined;
        // The guest is the tenant's: only well-formed lines with ids this side could have chosen count.
        const list: GuestStreamInfo[] = [];
        for (const line of text.split('\n')) {
          const m = /^(\d{1,10}) (\d{1,10}) ([01]) (\d{1,3})$/.exec(line);
          const id = Number(m?.[1]);
          if (m && id > 0 && id < 2 ** 31) list.push({ id, pid: Number(m[2]), exited: m[3] === '1', code: Number(m[4]) });
        }
        this.nextId = list.reduce((next, x) => Math.max(next, x.id + 1), this.nextId);
        resolve(list);
      };
      this.send(0, T.LIST);
    });
  }

  /**
   * Takes over streams an earlier connection started (see streams()), spawned with `keep`: the
   * guest sends their output again from `from` (what the caller already has, by byte offset),
   * then goes on with it and their exit. What the guest sent before that request is dropped, as
   * it comes again. Frames of streams not taken are dropped from here on. `stdin` and `tty` as
   * the stream was started.
   */
  adopt(streams: { id: number; pid: number; stdin: boolean; tty: boolean; from: StreamOffsets }[]): Map<number, GuestProcess> {
    const out = new Map<number, GuestProcess>();
    for (const x of streams) {
      const p = this.stream(x.id, x.stdin, x.tty);
      const s = this.byId.get(x.id);
      if (s) {
        s.started.resolve(x.pid);
        p.resumed = new Promise((resolve) => {
          s.resuming = { asked: x.from, resolve };
        });
        this.send(x.id, T.RESUME, Buffer.from(`${x.from.stdout} ${x.from.stderr}`));
      }
      out.set(x.id, p);
    }
    return out;
  }

  /** Lets the guest forget a kept stream that has exited, once its end is recorded. */
  release(id: number): void {
    this.send(id, T.RELEASE);
  }

  private open(type: number, payload: Buffer, input: boolean, tty: boolean): GuestProcess {
    const id = this.nextId++;
    const p = this.stream(id, input, tty);
    if (!this.closed) this.send(id, type, payload);
    return p;
  }

  /** The host's side of stream `id`: its output, input, exit. */
  private stream(id: number, input: boolean, tty: boolean): GuestProcess {
    let resolveDone!: (r: ExecResult) => void;
    const done = new Promise<ExecResult>((r) => {
      resolveDone = r;
    });
    let started!: Stream['started'];
    const startedP = new Promise<number>((resolve, reject) => {
      started = { resolve, reject };
    });
    startedP.catch(() => {});
    const stream: Stream = { stdout: new Readable({ read() {} }), stderr: new Readable({ read() {} }), started, finish: resolveDone };
    this.byId.set(id, stream);
    if (this.closed) this.end(id, stream, { exitCode: 255, message: 'the microvm went away' });
    const stdin = input
      ? new Writable({
          write: (chunk: Buffer, _enc, cb) => {
            for (let i = 0; i < chunk.length; i += MAX_DATA) this.send(id, T.STDIN, chunk.subarray(i, i + MAX_DATA));
            cb();
          },
          final: (cb) => {
            // A terminal has no end of input but the user's ^D, which arrives as data.
            if (!tty) this.send(id, T.STDIN_EOF);
            cb();
          },
        })
      : undefined;
    return {
      id,
      stdin,
      stdout: stream.stdout,
      stderr: tty ? undefined : stream.stderr,
      started: startedP,
      resize: (cols, rows) => {
        if (tty && cols > 0 && rows > 0) this.send(id, T.RESIZE, Buffer.from(`${Math.min(rows, 1000)} ${Math.min(cols, 1000)}`));
      },
      signal: (sig) => this.send(id, T.SIGNAL, Buffer.from(String(sig))),
      kill: () => this.send(id, T.SIGNAL, Buffer.from('9')),
      done,
    };
  }

  private send(id: number, type: number, payload: Buffer = Buffer.alloc(0)): void {
    if (this.closed) return;
    const header = Buffer.alloc(HEADER);
    header.writeUInt32BE(payload.length, 0);
    header.writeUInt32BE(id, 4);
    header.writeUInt8(type, 8);
    this.socket.write(Buffer.concat([header, payload]));
  }

  private receive(data: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, data]) : data;
    while (this.buffered.length >= HEADER) {
      const len = this.buffered.readUInt32BE(0);
      if (this.buffered.length < HEADER + len) break;
      const id = this.buffered.readUInt32BE(4);
      const type = this.buffered.readUInt8(8);
      const payload = this.buffered.subarray(HEADER, HEADER + len);
      this.buffered = this.buffered.subarray(HEADER + len);
      this.frame(id, type, payload);
    }
  }

  private frame(id: number, type: number, payload: Buffer): void {
    if (type === T.READY) {
      this.onReady?.();
      return;
    }
    if (type === T.LISTED) {
      this.onListed?.(payload.toString());
      return;
    }
    const s = this.byId.get(id);
    if (s?.resuming) {
      if (type !== T.RESUMED) return;
      const m = /^(\d+) (\d+)$/.exec(payload.toString());
      const { asked, resolve } = s.resuming;
      s.resuming = undefined;
      resolve({ stdout: Math.max(0, Number(m?.[1] ?? asked.stdout) - asked.stdout), stderr: Math.max(0, Number(m?.[2] ?? asked.stderr) - asked.stderr) });
      return;
    }
    // Output of a stream nobody has taken (yet): an adopted one is sent again on request.
    if (!s) return;
    switch (type) {
      case T.STARTED:
        s.started.resolve(Number(payload.toString()));
        break;
      case T.STDOUT:
        s.stdout.push(Buffer.from(payload));
        break;
      case T.STDERR:
        s.stderr.push(Buffer.from(payload));
        break;
      case T.ERROR:
        s.error = payload.toString();
        s.started.reject(new KubicleError('Invalid', s.error));
        break;
      case T.EXIT: {
        const exitCode = Number(payload.toString());
        this.end(id, s, s.error ? { exitCode, message: s.error } : { exitCode });
        break;
      }
    }
  }

  private end(id: number, s: Stream, r: ExecResult): void {
    this.byId.delete(id);
    s.started.reject(new KubicleError('Unavailable', r.message ?? `exited ${r.exitCode}`));
    s.stdout.push(null);
    s.stderr.push(null);
    s.finish(r);
  }
}
