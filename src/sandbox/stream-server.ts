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

  /** Starts the process a request asks for; throws (before any upgrade) when it cannot. */
  async open(req: http.IncomingMessage, parts: string[], q: URLSearchParams): Promise<{ proc: StreamedProcess; protocol: string }> {
    if (req.method !== 'GET' || String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw new KubicleError('BadRequest', 'streams need a WebSocket upgrade');
    const [, sandbox, third, name, action] = parts;
    if (parts.length === 3 && third === 'portforward') {
      const want = portForwardSubprotocol;
      this.requireProtocol(req, want);
      const port = Number(q.get('port'));
      return { proc: await (await this.runtimeOf(sandbox)).portForward(sandbox, port), protocol: want };
    }
    if (parts.length === 5 && third === 'containers' && action === 'exec') {
      this.requireProtocol(req, execSubprotocol);
      const spec: ExecSpec = { command: q.getAll('command'), stdin: q.get('stdin') === 'true', tty: q.get('tty') === 'true' };
      if (!spec.command.length) throw new KubicleError('Invalid', 'command is required');
      return { proc: await (await this.runtimeOf(sandbox)).execStream(sandbox, name, spec), protocol: execSubprotocol };
    }
    if (parts.length === 5 && third === 'containers' && action === 'attach') {
      this.requireProtocol(req, execSubprotocol);
      return { proc: await (await this.runtimeOf(sandbox)).attach(sandbox, name, q.get('stdin') === 'true'), protocol: execSubprotocol };
    }
    throw new KubicleError('NotFound', `no stream route for ${req.url}`);
  }

  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, proc: StreamedProcess, protocol: string): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (protocol === execSubprotocol) this.bridgeExec(ws, proc);
      else this.bridgeConnection(ws, proc);
    });
  }

  private requireProtocol(req: http.IncomingMessage, want: string): void {
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(want)) throw new KubicleError('BadRequest', `this stream speaks the ${want} subprotocol`);
  }

  private bridgeExec(ws: WebSocket, proc: StreamedProcess): void {
    const pumps = [pump(proc.stdout, ws, Channel.stdout), proc.stderr ? pump(proc.stderr, ws, Channel.stderr) : Promise.resolve()];
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary || !data.length) return;
      const body = data.subarray(1);
      switch (data[0]) {
        case Channel.stdin:
          proc.stdin?.write(body);
          break;
        case Channel.resize:
          try {
            const size = JSON.parse(body.toString()) as { cols?: number; rows?: number };
            proc.resize(Number(size.cols), Number(size.rows));
          } catch {
            // A malformed resize changes nothing; the session goes on.
          }
          break;
        case Channel.close:
          if (body[0] === Channel.stdin) proc.stdin?.end();
          break;
      }
    });
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
