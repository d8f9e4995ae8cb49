import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { channelMessage, ExecProtocol, exitStatus, StreamChannel, type TerminalSize } from '../api/remote-command.js';
import type { Obj } from '../client/kube-client.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { type SandboxClient, ws } from '../sandbox/api/client.js';
import { Channel, frame } from '../sandbox/api/streams.js';
import type { ExecResult } from '../sandbox/api/types.js';

/**
 * The kubelet's stream endpoints, for the API server: exec and attach in Kubernetes' v5/v4
 * channel protocol (so the API server can relay a WebSocket client's messages untouched), and
 * port-forward as one WebSocket per connection in the agent's own framing. Each is a thin
 * translation onto the host agent's streams (sandbox/api/streams.ts): pod to sandbox, Kubernetes
 * terminal sizes and Status to the agent's sizes and exit results.
 */
export class KubeletStreams {
  /** Made with the first stream, when ws is loaded (see sandbox/api/client.ts). */
  private server?: WebSocketServer;

  constructor(
    private readonly agent: SandboxClient,
    private readonly log: Logger,
  ) {}

  private wsServer(): WebSocketServer {
    this.server ??= new (ws().WebSocketServer)({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: 16 << 20,
      handleProtocols: (offered) => [ExecProtocol.v5, ExecProtocol.v4, ...offered].find((p) => offered.has(p)) ?? false,
    });
    return this.server;
  }

  /** `/exec/{ns}/{pod}/{container}?command=…&input=1&output=1&error=1&tty=1`. */
  async exec(req: http.IncomingMessage, socket: Duplex, head: Buffer, pod: Obj, container: string, q: URLSearchParams): Promise<void> {
    const command = q.getAll('command');
    if (!command.length) throw new KubicleError('BadRequest', 'you must specify at least 1 command');
    this.requireContainer(pod, container);
    const tty = flag(q, 'tty');
    const agent = await this.agent.execStream(pod.metadata.uid, container, { command, stdin: flag(q, 'input'), tty }).catch((err) => {
      if (err instanceof KubicleError && err.code === 'Conflict') throw new KubicleError('BadRequest', `container ${container} is not running`);
      throw err;
    });
    this.wsServer().handleUpgrade(req, socket, head, (client) => this.relayExec(client, agent, command));
  }

  /**
   * `/attach/{ns}/{pod}/{container}?input=1&tty=1`: the container's output from now on and, with
   * input, its stdin (the container must declare `stdin: true`), until it exits or the client
   * detaches. As upstream, the session ends with success whatever the container's exit code: the
   * client reads that from the pod's status.
   */
  async attach(req: http.IncomingMessage, socket: Duplex, head: Buffer, pod: Obj, container: string, q: URLSearchParams): Promise<void> {
    this.requireContainer(pod, container);
    const spec = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((c: Obj) => c.name === container);
    if (flag(q, 'input') && !spec?.stdin) throw new KubicleError('BadRequest', `stdin is not enabled for container ${container}: set stdin: true in its spec to attach to its input`);
    if (flag(q, 'tty') && !spec?.tty) throw new KubicleError('BadRequest', `tty is not enabled for container ${container}: set tty: true in its spec`);
    const agent = await this.agent.attachStream(pod.metadata.uid, container, { stdin: flag(q, 'input') }).catch((err) => {
      if (err instanceof KubicleError && err.code === 'Conflict') throw new KubicleError('BadRequest', `container ${container} is not running`);
      throw err;
    });
    this.wsServer().handleUpgrade(req, socket, head, (client) => this.relayExec(client, agent, [], true));
  }

  /** `/portForward/{ns}/{pod}?port=N`: bytes as binary messages, an empty one for a half-close, 1011 with the reason on failure. */
  async portForward(req: http.IncomingMessage, socket: Duplex, head: Buffer, pod: Obj, q: URLSearchParams): Promise<void> {
    const port = Number(q.get('port'));
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new KubicleError('BadRequest', `invalid port ${JSON.stringify(q.get('port'))}`);
    const agent = await this.agent.portForward(pod.metadata.uid, port);
    this.wsServer().handleUpgrade(req, socket, head, (client) => {
      client.on('message', (d: Buffer) => agent.readyState === agent.OPEN && agent.send(d));
      agent.on('message', (d: Buffer) => client.readyState === client.OPEN && client.send(d));
      closeTogether(client, agent);
      agent.resume();
    });
  }

  /** Relays an agent exec or attach session; an attach always ends in success (see attach). */
  private relayExec(client: WebSocket, agent: WebSocket, command: string[], attach = false): void {
    client.on('message', (d: Buffer, binary) => {
      if (!binary || !d.length || agent.readyState !== agent.OPEN) return;
      if (d[0] === StreamChannel.resize) {
        try {
          const size = JSON.parse(d.subarray(1).toString()) as TerminalSize;
          agent.send(frame(Channel.resize, JSON.stringify({ cols: size.Width, rows: size.Height })));
        } catch (err) {
          this.log.debug('bad resize message', { err });
        }
      } else if (d[0] === StreamChannel.stdin || d[0] === StreamChannel.close) agent.send(d);
    });
    agent.on('message', (d: Buffer) => {
      if (client.readyState !== client.OPEN || !d.length) return;
      if (d[0] === Channel.status) {
        const result = JSON.parse(d.subarray(1).toString()) as ExecResult;
        // A command the runtime could not run is an internal error, in upstream's words.
        const message = result.message && !attach ? `Internal error occurred: error executing command in container: ${result.message}` : result.message;
        client.send(channelMessage(StreamChannel.error, JSON.stringify(attach && !message ? exitStatus(0, []) : exitStatus(result.exitCode, command, message))));
      } else client.send(d);
    });
    closeTogether(client, agent);
    agent.resume();
  }

  private requireContainer(pod: Obj, container: string): void {
    const names = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].map((c: { name: string }) => c.name);
    if (!names.includes(container)) throw new KubicleError('NotFound', `container ${container} not found in pod ${pod.metadata.name}`);
  }
}

function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === '1' || v === 'true';
}

/** When either side closes, the other closes with the same code and reason (1011 carries a failure). */
function closeTogether(a: WebSocket, b: WebSocket): void {
  const pass = (from: WebSocket, to: WebSocket) =>
    from.on('close', (code, reason) => {
      if (to.readyState === to.OPEN || to.readyState === to.CONNECTING) to.close(code === 1011 ? 1011 : 1000, code === 1011 ? reason : undefined);
    });
  pass(a, b);
  pass(b, a);
  a.on('error', () => a.terminate());
  b.on('error', () => b.terminate());
}
