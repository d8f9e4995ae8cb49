import type http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { Channel, CloseCode, closeReason, execSubprotocol, frame, portForwardSubprotocol } from './api/streams.js';
import type { ExecSpec } from './api/types.js';
import type { SandboxRuntime, StreamedProcess } from './runtime.js';

/** Output waits while this much is queued on the socket: a slow client slows the process, not the agent's memory. */
const highWater = 1 << 20;

/**
 * How long a terminal session waits for the client's size before it starts at 80×24. kubectl
 * sends its size as soon as the streams are up, so this is only reached by clients that never do.
 */
const firstSizeWaitMs = 1_000;

/** What an accepted stream request becomes once the socket is upgraded. */
export type StreamSession = { protocol: string; bridge: (ws: WebSocket) => void };

/**
 * The Sandbox API's streams (see api/streams.ts): upgrades GETs on the exec and port-forward
 * routes to WebSockets and bridges them to a runtime's StreamedProcess. Errors before the
 * upgrade are answered like any API error; after it, they end the process and the socket.
 */
export class StreamServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 16 << 20, perMessageDeflate: false });

  constructor(
    private readonly runtimeOf: (sandbox: string) => Promise<SandboxRuntime>,
    private readonly log: Logger,
  ) {}

  /**
   * Accepts a stream request: starts its process, or for a terminal whose size the request does
   * not give, checks that it can start and leaves the start to the client's first resize. Throws
   * (before any upgrade) when it cannot.
   */
  async open(req: http.IncomingMessage, parts: string[], q: URLSearchParams): Promise<StreamSession> {
    if (req.method !== 'GET' || String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw new KubicleError('BadRequest', 'streams need a WebSocket upgrade');
    const [, sandbox, third, name, action] = parts;
    if (parts.length === 3 && third === 'portforward') {
      const want = portForwardSubprotocol;
      this.requireProtocol(req, want);
      const port = Number(q.get('port'));
      const proc = await (await this.runtimeOf(sandbox)).portForward(sandbox, port);
      return { protocol: want, bridge: (ws) => this.bridgeConnection(ws, proc) };
    }
    if (parts.length === 5 && third === 'containers' && action === 'exec') {
      this.requireProtocol(req, execSubprotocol);
      const spec: ExecSpec = { command: q.getAll('command'), stdin: q.get('stdin') === 'true', tty: q.get('tty') === 'true', size: terminalSize(q) };
      if (!spec.command.length) throw new KubicleError('Invalid', 'command is required');
      const runtime = await this.runtimeOf(sandbox);
      if (spec.tty && !spec.size) {
        await requireRunning(runtime, sandbox, name);
        return { protocol: execSubprotocol, bridge: (ws) => this.startOnFirstSize(ws, runtime, sandbox, name, spec) };
      }
      const proc = await runtime.execStream(sandbox, name, spec);
      return { protocol: execSubprotocol, bridge: (ws) => this.bridgeExec(ws, proc) };
    }
    if (parts.length === 5 && third === 'containers' && action === 'attach') {
      this.requireProtocol(req, execSubprotocol);
      const proc = await (await this.runtimeOf(sandbox)).attach(sandbox, name, q.get('stdin') === 'true');
      return { protocol: execSubprotocol, bridge: (ws) => this.bridgeExec(ws, proc) };
    }
    throw new KubicleError('NotFound', `no stream route for ${req.url}`);
  }

  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, session: StreamSession): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => session.bridge(ws));
  }

  /**
   * A terminal starts at the client's size, so the first thing it runs sees the right one:
   * messages wait until the first resize (or firstSizeWaitMs), then the process starts and the
   * waiting input follows it. A start that fails now ends the session with its message.
   */
  private startOnFirstSize(ws: WebSocket, runtime: SandboxRuntime, sandbox: string, name: string, spec: ExecSpec): void {
    const early: Buffer[] = [];
    let started = false;
    const start = (size?: { cols: number; rows: number }) => {
      if (started) return;
      started = true;
      clearTimeout(timer);
      runtime.execStream(sandbox, name, { ...spec, size }).then(
        (proc) => {
          ws.off('message', hold);
          if (ws.readyState !== WebSocket.OPEN) return proc.kill();
          this.bridgeExec(ws, proc, early);
        },
        (err: Error) => {
          if (ws.readyState !== WebSocket.OPEN) return;
          ws.send(frame(Channel.status, JSON.stringify({ exitCode: 126, message: err.message })));
          ws.close(CloseCode.normal);
        },
      );
    };
    const hold = (data: Buffer, isBinary: boolean) => {
      const size = !started && isBinary && data[0] === Channel.resize ? parseSize(data.subarray(1)) : undefined;
      if (size) start(size);
      else if (isBinary) early.push(data);
    };
    const timer = setTimeout(() => start(), firstSizeWaitMs);
    ws.on('message', hold);
    ws.once('close', () => {
      started = true;
      clearTimeout(timer);
    });
  }

  private requireProtocol(req: http.IncomingMessage, want: string): void {
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(want)) throw new KubicleError('BadRequest', `this stream speaks the ${want} subprotocol`);
  }

  /** Bridges a started process; `early` are messages that came before it started, handled first. */
  private bridgeExec(ws: WebSocket, proc: StreamedProcess, early: Buffer[] = []): void {
    const pumps = [pump(proc.stdout, ws, Channel.stdout), proc.stderr ? pump(proc.stderr, ws, Channel.stderr) : Promise.resolve()];
    const onMessage = (data: Buffer, isBinary: boolean) => {
      if (!isBinary || !data.length) return;
      const body = data.subarray(1);
      switch (data[0]) {
        case Channel.stdin:
          proc.stdin?.write(body);
          break;
        case Channel.resize: {
          // A malformed resize changes nothing; the session goes on.
          const size = parseSize(body);
          if (size) proc.resize(size.cols, size.rows);
          break;
        }
        case Channel.close:
          if (body[0] === Channel.stdin) proc.stdin?.end();
          break;
      }
    };
    for (const m of early) onMessage(m, true);
    ws.on('message', onMessage);
    ws.on('close', () => proc.kill());
    ws.on('error', (err) => this.log.debug('exec stream error', { err }));
    void Promise.all([proc.done, ...pumps]).then(([result]) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(frame(Channel.status, JSON.stringify(result)));
      ws.close(CloseCode.normal);
    });
  }

  private bridgeConnection(ws: WebSocket, proc: StreamedProcess): void {
    const out = pump(proc.stdout, ws);
    ws.on('message', (data: Buffer) => {
      if (data.length) proc.stdin?.write(data);
      else proc.stdin?.end();
    });
    ws.on('close', () => proc.kill());
    ws.on('error', (err) => this.log.debug('port-forward stream error', { err }));
    void Promise.all([proc.done, out]).then(([result]) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (result.exitCode === 0) ws.close(CloseCode.normal);
      else ws.close(CloseCode.error, closeReason(result.message ?? `exit code ${result.exitCode}`));
    });
  }
}

/** Copies a stream into messages (on a channel, when given); resolves at its end. */
function pump(from: Readable, ws: WebSocket, channel?: number): Promise<void> {
  return new Promise((resolve) => {
    from.on('data', (d: Buffer) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(channel === undefined ? d : frame(channel, d), () => {
        if (from.isPaused() && ws.bufferedAmount < highWater) from.resume();
      });
      if (ws.bufferedAmount >= highWater) from.pause();
    });
    from.once('end', resolve);
    from.once('close', resolve);
    from.once('error', () => resolve());
  });
}

/** A terminal size message ({"cols":N,"rows":N}), or undefined when it is not one. */
function parseSize(body: Buffer): { cols: number; rows: number } | undefined {
  try {
    const { cols, rows } = JSON.parse(body.toString()) as { cols?: unknown; rows?: unknown };
    return validSize(Number(cols), Number(rows));
  } catch {
    return undefined;
  }
}

/** The `cols` and `rows` of a request, when it gives a valid size. */
function terminalSize(q: URLSearchParams): { cols: number; rows: number } | undefined {
  return q.has('cols') || q.has('rows') ? validSize(Number(q.get('cols')), Number(q.get('rows'))) : undefined;
}

function validSize(cols: number, rows: number): { cols: number; rows: number } | undefined {
  const ok = (n: number) => Number.isInteger(n) && n > 0 && n <= 1000;
  return ok(cols) && ok(rows) ? { cols, rows } : undefined;
}

/** NotFound or Conflict, as the runtime's execStream would say, for a container that cannot take an exec now. */
async function requireRunning(runtime: SandboxRuntime, sandbox: string, name: string): Promise<void> {
  const c = (await runtime.status(sandbox)).containers.find((s) => s.name === name);
  if (!c) throw new KubicleError('NotFound', `container ${name} not found in sandbox ${sandbox}`);
  if (c.state !== 'running') throw new KubicleError('Conflict', `container ${name} is not running`);
}
