import http from 'node:http';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type { WebSocket } from 'ws';
import { type ErrorCode, KubicleError } from '../../observe/errors.js';
import { execSubprotocol, portForwardSubprotocol } from './streams.js';
import type { ContainerSpec, ContainerStatus, ExecSpec, FileSpec, HostInfo, ImageSummary, LogOptions, NetworkSpec, NetworkStatus, RegistryAuth, SandboxSpec, SandboxStatus, SandboxUsage, Usage } from './types.js';
import { formatLabelSelector } from './wire.js';

/** Where the Sandbox API is: a unix socket on the host, or TCP with a bearer token. */

const load = createRequire(import.meta.url);
type Ws = typeof import('ws');
let wsLib: Ws | undefined;
/** ws on the first stream, not at start: a tenant control plane's virtual kubelet may never need it. */
export const ws = (): Ws => (wsLib ??= load('ws') as Ws);

export type SandboxEndpoint = { socketPath: string } | { url: string; token: string };

/**
 * A client of the Sandbox API v1, for the kubelet (and later the provider). Each method is one
 * HTTP call; the agent's error codes come back as KubicleErrors with the same code and message.
 */
export class SandboxClient {
  /**
   * `callTimeoutMs` bounds every JSON call not given a signal of its own (none by default): a
   * stopped agent accepts connections and never answers, and a caller serving many hosts must
   * not wait on one forever. Streams and logs are not bounded.
   */
  constructor(
    private readonly endpoint: SandboxEndpoint,
    private readonly callTimeoutMs?: number,
  ) {}

  version(): Promise<{ version: string; runtimes: string[] }> {
    return this.json('GET', '/v1/version');
  }

  /** What the host has; `signal` bounds the wait (a stopped agent accepts connections and never answers). */
  host(signal?: AbortSignal): Promise<HostInfo> {
    return this.json('GET', '/v1/host', undefined, signal);
  }

  /** Pulls an image (idempotent); `auth` lists credentials per registry. */
  pullImage(image: string, auth: RegistryAuth[] = []): Promise<ImageSummary> {
    return this.json('POST', '/v1/images/pull', { image, auth });
  }

  /** The local image a reference names; NotFound when it was never pulled. */
  getImage(image: string): Promise<ImageSummary> {
    return this.json('GET', `/v1/images/resolve?ref=${encodeURIComponent(image)}`);
  }

  listImages(): Promise<ImageSummary[]> {
    return this.json('GET', '/v1/images');
  }

  /** Defines an isolated pod network (idempotent; Conflict for the name with another range). */
  defineNetwork(name: string, spec: NetworkSpec): Promise<NetworkStatus> {
    return this.json('PUT', `/v1/networks/${enc(name)}`, spec);
  }

  listNetworks(): Promise<NetworkStatus[]> {
    return this.json('GET', '/v1/networks');
  }

  /** Removes a network (idempotent; Conflict while sandboxes are on it). */
  removeNetwork(name: string): Promise<void> {
    return this.json('DELETE', `/v1/networks/${enc(name)}`);
  }

  /** Removes a host directory the agent allows callers to remove (Forbidden otherwise); done if absent. */
  removeHostDir(dir: string): Promise<void> {
    return this.json('DELETE', `/v1/host-dirs?path=${encodeURIComponent(dir)}`);
  }

  createSandbox(spec: SandboxSpec, runtime = 'runc'): Promise<SandboxStatus> {
    return this.json('POST', '/v1/sandboxes', { spec, runtime });
  }

  /** `signal` bounds the wait. */
  getSandbox(id: string, signal?: AbortSignal): Promise<SandboxStatus> {
    return this.json('GET', `/v1/sandboxes/${enc(id)}`, undefined, signal);
  }

  /** Every sandbox on the host, or only those whose labels include all of `labels`; `signal` bounds the wait. */
  listSandboxes(labels?: Record<string, string>, signal?: AbortSignal): Promise<SandboxStatus[]> {
    const selector = formatLabelSelector(labels ?? {});
    return this.json('GET', selector ? `/v1/sandboxes?labelSelector=${encodeURIComponent(selector)}` : '/v1/sandboxes', undefined, signal);
  }

  removeSandbox(id: string, graceSeconds: number): Promise<void> {
    return this.json('DELETE', `/v1/sandboxes/${enc(id)}?grace=${graceSeconds}`);
  }

  startContainer(sandbox: string, spec: ContainerSpec): Promise<ContainerStatus> {
    return this.json('POST', `/v1/sandboxes/${enc(sandbox)}/containers`, spec);
  }

  stopContainer(sandbox: string, name: string, graceSeconds: number): Promise<void> {
    return this.json('POST', `/v1/sandboxes/${enc(sandbox)}/containers/${enc(name)}/stop?grace=${graceSeconds}`);
  }

  exec(sandbox: string, name: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }> {
    return this.json('POST', `/v1/sandboxes/${enc(sandbox)}/containers/${enc(name)}/exec`, { command, timeoutMs });
  }

  updateFiles(sandbox: string, volume: string, files: FileSpec[]): Promise<void> {
    return this.json('PUT', `/v1/sandboxes/${enc(sandbox)}/volumes/${enc(volume)}/files`, { files });
  }

  usage(sandbox: string, container?: string): Promise<Usage> {
    return this.json('GET', `/v1/sandboxes/${enc(sandbox)}${container ? `/containers/${enc(container)}` : ''}/usage`);
  }

  /** Every sandbox's usage on the host, in one call; `signal` bounds the wait. */
  usageAll(signal?: AbortSignal): Promise<SandboxUsage[]> {
    return this.json('GET', '/v1/usage', undefined, signal);
  }

  /** The log as a stream of text; with `follow` it stays open until the run ends or the signal aborts. */
  async logs(sandbox: string, name: string, opts: LogOptions, signal?: AbortSignal): Promise<Readable> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) q.set(k, String(v));
    const res = await this.request('GET', `/v1/sandboxes/${enc(sandbox)}/containers/${enc(name)}/logs?${q}`, undefined, signal);
    if ((res.statusCode ?? 500) >= 300) throw await errorOf(res);
    return res;
  }

  /** An exec session as an open WebSocket speaking the exec protocol of streams.ts. */
  execStream(sandbox: string, name: string, spec: ExecSpec): Promise<WebSocket> {
    const q = new URLSearchParams();
    for (const c of spec.command) q.append('command', c);
    if (spec.stdin) q.set('stdin', 'true');
    if (spec.tty) q.set('tty', 'true');
    if (spec.size) {
      q.set('cols', String(spec.size.cols));
      q.set('rows', String(spec.size.rows));
    }
    return this.socket(`/v1/sandboxes/${enc(sandbox)}/containers/${enc(name)}/exec?${q}`, execSubprotocol);
  }

  /** An attach session (the container's output, and its input with `stdin`) in the exec protocol of streams.ts. */
  attachStream(sandbox: string, name: string, opts: { stdin: boolean }): Promise<WebSocket> {
    return this.socket(`/v1/sandboxes/${enc(sandbox)}/containers/${enc(name)}/attach${opts.stdin ? '?stdin=true' : ''}`, execSubprotocol);
  }

  /** One TCP connection to a port in the sandbox, as an open WebSocket (streams.ts). */
  portForward(sandbox: string, port: number): Promise<WebSocket> {
    return this.socket(`/v1/sandboxes/${enc(sandbox)}/portforward?port=${port}`, portForwardSubprotocol);
  }

  private socket(path: string, protocol: string): Promise<WebSocket> {
    const { WebSocket } = ws();
    const socket =
      'socketPath' in this.endpoint
        ? new WebSocket(`ws+unix://${this.endpoint.socketPath}:${path}`, protocol, { perMessageDeflate: false })
        : new WebSocket(new URL(path, this.endpoint.url.replace(/^http/, 'ws')), protocol, { perMessageDeflate: false, headers: { authorization: `Bearer ${this.endpoint.token}` } });
    return new Promise((resolve, reject) => {
      // Handed over paused: the first output can come with the upgrade response, and ws emits
      // it before the caller could listen. Callers attach their listeners, then resume().
      socket.once('open', () => {
        socket.pause();
        resolve(socket);
      });
      socket.once('unexpected-response', (_req, res) => void errorOf(res).then(reject));
      socket.once('error', (err) => reject(new KubicleError('Unavailable', `sandbox agent unreachable: ${err.message}`, { cause: err })));
    });
  }

  private async json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const bound = signal ?? (this.callTimeoutMs ? AbortSignal.timeout(this.callTimeoutMs) : undefined);
    const res = await this.request(method, path, body, bound).catch((err: KubicleError) => {
      if (bound?.aborted && bound.reason?.name === 'TimeoutError') throw new KubicleError('Timeout', `sandbox agent did not answer ${method} ${path.split('?')[0]} in time`);
      throw err;
    });
    if ((res.statusCode ?? 500) >= 300) throw await errorOf(res);
    const text = await readText(res);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  private request(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {};
    const target =
      'socketPath' in this.endpoint
        ? { socketPath: this.endpoint.socketPath, path }
        : (() => {
            const u = new URL(path, this.endpoint.url);
            headers.authorization = `Bearer ${this.endpoint.token}`;
            return { host: u.hostname, port: u.port, path: `${u.pathname}${u.search}` };
          })();
    return new Promise((resolve, reject) => {
      const req = http.request({ ...target, method, headers, signal }, resolve);
      req.on('error', (err) => reject(err instanceof KubicleError ? err : new KubicleError('Unavailable', `sandbox agent unreachable: ${err.message}`, { cause: err })));
      req.end(data);
    });
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

async function readText(res: http.IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of res) s += c;
  return s;
}

async function errorOf(res: http.IncomingMessage): Promise<KubicleError> {
  const text = await readText(res);
  try {
    const e = JSON.parse(text) as { code: ErrorCode; message: string };
    return new KubicleError(e.code ?? 'Internal', e.message ?? text);
  } catch {
    return new KubicleError('Internal', `sandbox agent answered ${res.statusCode}: ${text.slice(0, 300)}`);
  }
}
