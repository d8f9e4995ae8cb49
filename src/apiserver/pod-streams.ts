import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import type { WebSocketServer } from 'ws';
import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import { ExecProtocol, PortForwardProtocol } from '../api/remote-command.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { type KubeletConnector, ws } from './kubelet-connector.js';
import type { ObjectStore } from './object-store.js';
import { containerOf } from './pod-logs.js';
import type { ResourceRequest } from './request-info.js';
import { toStatus } from './status.js';
import { SpdySession } from './streams/spdy.js';
import { relaySpdyExec } from './streams/spdy-exec.js';
import { servePortForward } from './streams/spdy-port-forward.js';

const streamSubresources = new Set(['exec', 'attach', 'portforward']);

/**
 * pods/exec, pods/attach and pods/portforward: the upgrade requests kubectl makes, in each
 * protocol it speaks — SPDY/3.1 (every version), WebSocket v5/v4 channels for exec and attach
 * (1.30+) and the WebSocket tunnel of SPDY for port-forward (1.31+). The API server ends the
 * client's protocol here and relays to the kubelet's WebSocket endpoints; whatever fails before
 * the switch is answered with a Status like any request.
 */
export class PodStreams {
  /** Made with the first stream: ws is loaded then, not at start (see kubelet-connector.ts). */
  private servers?: { wss: WebSocketServer; tunnels: WebSocketServer };

  constructor(
    private readonly registry: Registry,
    private readonly store: ObjectStore,
    private readonly kubelet: KubeletConnector,
    private readonly log: Logger,
  ) {}

  private wsServers(): { wss: WebSocketServer; tunnels: WebSocketServer } {
    const { WebSocketServer } = ws();
    this.servers ??= {
      wss: new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 << 20 }),
      tunnels: new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 << 20, handleProtocols: () => PortForwardProtocol.tunnel }),
    };
    return this.servers;
  }

  static handles(r: ResourceRequest | undefined): boolean {
    return !!r && r.group === '' && r.resource === 'pods' && !!r.name && !!r.subresource && streamSubresources.has(r.subresource);
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, r: ResourceRequest, q: URLSearchParams): Promise<void> {
    const pods = this.registry.lookup('', 'v1', 'pods');
    if (!pods || !r.namespace || !r.name) throw new KubicleError('NotFound', 'the server could not find the requested resource');
    const pod = await this.store.get(pods, r.namespace, r.name);
    const sub = r.subresource as string;
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    const websocket = upgrade === 'websocket';
    if (!websocket && !upgrade.startsWith('spdy/3.1')) throw new KubicleError('BadRequest', `unsupported upgrade protocol ${JSON.stringify(req.headers.upgrade)}`);
    if (sub === 'portforward') return this.portForward(req, socket, head, pod, websocket);
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') throw new KubicleError('BadRequest', `cannot ${sub === 'exec' ? 'exec into' : 'attach to'} a container in a completed pod; current phase is ${phase}`);
    const container = containerOf(pod, q.get('container'));
    const want = { stdin: flag(q, 'stdin'), stdout: flag(q, 'stdout'), stderr: flag(q, 'stderr'), tty: flag(q, 'tty') };
    const command = q.getAll('command');
    if (sub === 'exec' && !command.length) throw new KubicleError('BadRequest', 'you must specify at least 1 command');
    const kq = new URLSearchParams();
    for (const c of command) kq.append('command', c);
    if (want.stdin) kq.set('input', '1');
    if (want.stdout) kq.set('output', '1');
    if (want.stderr && !want.tty) kq.set('error', '1');
    if (want.tty) kq.set('tty', '1');
    const path = `/${sub}/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}/${encodeURIComponent(container)}?${kq}`;
    if (websocket) {
      const protocol = choose(offeredWebSocket(req), [ExecProtocol.v5, ExecProtocol.v4]);
      const upstream = await this.kubelet.socket(pod, path, [protocol]);
        this.wsServers().wss.handleUpgrade(req, socket, head, (client) => relayMessages(client, upstream));
      return;
    }
    const protocol = choose(offeredSpdy(req), [ExecProtocol.v4]);
    const upstream = await this.kubelet.socket(pod, path, [ExecProtocol.v4]);
    const session = this.switchToSpdy(socket, head, protocol);
    await relaySpdyExec(session, upstream, want);
  }

  private async portForward(req: IncomingMessage, socket: Duplex, head: Buffer, pod: KubeObject, websocket: boolean): Promise<void> {
    const describe = `${pod.metadata.name}_${pod.metadata.namespace}, uid ${pod.metadata.uid}`;
    const dial = (port: number) => this.kubelet.socket(pod, `/portForward/${encodeURIComponent(pod.metadata.namespace ?? '')}/${encodeURIComponent(String(pod.metadata.name))}?port=${port}`);
    if (websocket) {
      choose(offeredWebSocket(req), [PortForwardProtocol.tunnel]);
      // The tunnel's name has a '/', which is no token (RFC 6455 §4.1) and which ws refuses to
      // parse: offer it a stand-in and answer with the real name, as kubectl expects.
      req.headers['sec-websocket-protocol'] = 'portforward-tunnel';
      this.wsServers().tunnels.handleUpgrade(req, socket, head, (client) => {
        const tunnel = ws().createWebSocketStream(client, { allowHalfOpen: false });
        tunnel.on('error', () => {});
        servePortForward(this.spdyOver(tunnel), dial, describe);
      });
      return;
    }
    choose(offeredSpdy(req), [PortForwardProtocol.spdy]);
    servePortForward(this.switchToSpdy(socket, head, PortForwardProtocol.spdy), dial, describe);
  }

  /** Answers 101 for SPDY/3.1 with the negotiated stream protocol and starts the session on the socket. */
  private switchToSpdy(socket: Duplex, head: Buffer, protocol: string): SpdySession {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ${protocol}\r\n\r\n`);
    const session = this.spdyOver(socket);
    if (head.length) socket.unshift(head);
    return session;
  }

  private spdyOver(transport: Duplex): SpdySession {
    const session = new SpdySession(transport);
    session.on('protocolError', (err: Error) => this.log.debug('SPDY protocol error', { err }));
    return session;
  }

  /** Writes a refusal on a connection that never switched protocols. */
  static refuse(socket: Duplex, err: unknown): number {
    const status = toStatus(err);
    const body = JSON.stringify(status);
    if (socket.writable) {
      socket.end(`HTTP/1.1 ${status.code} ${http.STATUS_CODES[status.code] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    return status.code;
  }
}

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === 'true' || v === '1';
}

function offeredWebSocket(req: IncomingMessage): string[] {
  return String(req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
}

function offeredSpdy(req: IncomingMessage): string[] {
  const raw = req.headersDistinct['x-stream-protocol-version'] ?? [];
  return raw.flatMap((v) => v.split(',')).map((p) => p.trim()).filter(Boolean);
}

/** The first of ours the client offers, or upstream's Forbidden for a failed negotiation. */
function choose(offered: string[], ours: string[]): string {
  const found = ours.find((p) => offered.includes(p));
  if (!found) throw new KubicleError('Forbidden', `unable to upgrade: unable to negotiate protocol: client supports ${JSON.stringify(offered)}, server accepts ${JSON.stringify(ours)}`);
  return found;
}

/** Message-for-message relay between two WebSockets of the same protocol; either closing closes both. */
function relayMessages(client: WebSocket, upstream: WebSocket): void {
  client.on('message', (d: Buffer, binary) => upstream.readyState === upstream.OPEN && upstream.send(d, { binary }));
  upstream.on('message', (d: Buffer, binary) => client.readyState === client.OPEN && client.send(d, { binary }));
  const pass = (from: WebSocket, to: WebSocket) =>
    from.on('close', (code) => {
      if (to.readyState === to.OPEN) to.close(code === 1011 ? 1011 : 1000);
    });
  pass(client, upstream);
  pass(upstream, client);
  client.on('error', () => client.terminate());
  upstream.on('error', () => upstream.terminate());
  upstream.resume();
}
