import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import type WebSocket from 'ws';
import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import { KubicleError } from '../observe/errors.js';
import type { ObjectStore } from './object-store.js';

/**
 * How the API server reaches the kubelet of a pod's node: the node's InternalIP and kubelet
 * port from its status, HTTPS with the kubelet's certificate checked against the cluster CA and
 * the API server's own token presented. A kubelet's refusal comes back as a KubicleError with
 * its message.
 */

const load = createRequire(import.meta.url);
type Ws = typeof import('ws');
let wsLib: Ws | undefined;
/** ws on the first stream, not at start: loading it costs a control plane's wake ~20 ms. */
export const ws = (): Ws => (wsLib ??= load('ws') as Ws);

export class KubeletConnector {
  constructor(
    private readonly registry: Registry,
    private readonly store: ObjectStore,
    private readonly caPem: () => string,
    private readonly token: string,
  ) {}

  /** A GET whose response streams back (logs); rejects on a non-2xx answer. */
  async get(pod: KubeObject, path: string, signalOn: IncomingMessage): Promise<IncomingMessage> {
    return this.request(await this.endpoint(this.nodeOf(pod)), path, (r) => signalOn.on('close', () => r.destroy()));
  }

  /** A GET of a JSON document from a node's kubelet (stats), within `timeoutMs`. */
  async getJson<T>(nodeName: string, path: string, timeoutMs = 10_000): Promise<T> {
    const res = await this.request(await this.endpoint(nodeName), path, (r) => r.setTimeout(timeoutMs, () => r.destroy(new Error('timed out'))));
    let text = '';
    for await (const c of res) text += c;
    return JSON.parse(text) as T;
  }

  private async request(at: { host: string; port: number; nodeName: string }, path: string, tie: (r: ReturnType<typeof https.request>) => void): Promise<IncomingMessage> {
    const upstream = await new Promise<IncomingMessage>((resolve, reject) => {
      const r = https.request({ host: at.host, port: at.port, method: 'GET', path, ca: this.caPem(), headers: { authorization: `Bearer ${this.token}` } }, resolve);
      r.on('error', (err) => reject(new KubicleError('Unavailable', `cannot reach the kubelet of node ${at.nodeName}: ${err.message}`)));
      tie(r);
      r.end();
    });
    if ((upstream.statusCode ?? 500) >= 300) throw await refusal(upstream);
    return upstream;
  }

  /**
   * An open WebSocket to a kubelet stream endpoint (exec, attach, portForward), handed over
   * paused: the first messages can arrive with the upgrade response itself and ws would emit them
   * before the caller could listen. Attach the listeners, then resume().
   */
  async socket(pod: KubeObject, path: string, protocols: string[] = []): Promise<WebSocket> {
    const { host, port, nodeName } = await this.endpoint(this.nodeOf(pod));
    const socket = new (ws().WebSocket)(`wss://${host.includes(':') ? `[${host}]` : host}:${port}${path}`, protocols, {
      ca: this.caPem(),
      headers: { authorization: `Bearer ${this.token}` },
      perMessageDeflate: false,
      maxPayload: 16 << 20,
    });
    return new Promise((resolve, reject) => {
      socket.once('open', () => {
        socket.pause();
        resolve(socket);
      });
      socket.once('unexpected-response', (_req, res) => void refusal(res).then(reject));
      socket.once('error', (err) => reject(new KubicleError('Unavailable', `cannot reach the kubelet of node ${nodeName}: ${err.message}`)));
    });
  }

  private nodeOf(pod: KubeObject): string {
    const nodeName = pod.spec?.nodeName as string | undefined;
    if (!nodeName) throw new KubicleError('BadRequest', `pod ${pod.metadata.name} does not have a host assigned`);
    return nodeName;
  }

  private async endpoint(nodeName: string): Promise<{ host: string; port: number; nodeName: string }> {
    const nodes = this.registry.mustLookup('', 'v1', 'nodes');
    const node = await this.store.get(nodes, undefined, nodeName);
    const host = (node.status?.addresses as { type: string; address: string }[] | undefined)?.find((a) => a.type === 'InternalIP')?.address;
    const port = node.status?.daemonEndpoints?.kubeletEndpoint?.Port as number | undefined;
    if (!host || !port) throw new KubicleError('BadRequest', `node ${nodeName} has no kubelet endpoint`);
    return { host, port, nodeName };
  }
}

async function refusal(res: IncomingMessage): Promise<KubicleError> {
  let text = '';
  for await (const c of res) text += c;
  const code = res.statusCode === 404 ? 'NotFound' : res.statusCode === 401 || res.statusCode === 403 ? 'Forbidden' : (res.statusCode ?? 500) >= 500 ? 'Internal' : 'BadRequest';
  return new KubicleError(code, text || `kubelet answered ${res.statusCode}`);
}
