import { timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Obj } from '../client/kube-client.js';
import { type ErrorCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import type { LogOptions } from '../sandbox/api/types.js';
import { KubeletStreams } from './kubelet-streams.js';
import type { StatsProvider } from './stats.js';

export interface KubeletServerOptions {
  host: string;
  port: number;
  certPem: string;
  keyPem: string;
  /** The bearer token the API server presents (the kubelet's own credential to it, shared). */
  token: string;
}

const httpStatus: Partial<Record<ErrorCode, number>> = { NotFound: 404, BadRequest: 400, Invalid: 400, Conflict: 400, Unauthorized: 401, Forbidden: 403 };

/**
 * The kubelet's HTTPS API, which the API server calls for a pod's streams:
 * `GET /containerLogs/{namespace}/{pod}/{container}` with the kubelet's query parameters
 * (follow, previous, timestamps, tailLines, sinceSeconds, sinceTime, limitBytes), `GET
 * /stats/summary` (stats.ts, for resource metrics), and WebSocket
 * upgrades of `/exec`, `/attach` and `/portForward` (kubelet-streams.ts). It finds the pod among
 * its own and streams from the host agent. Only the API server's token is accepted.
 */
export class KubeletServer {
  private server?: https.Server;
  private readonly streams: KubeletStreams;

  constructor(
    private readonly opts: KubeletServerOptions,
    private readonly pods: (namespace: string, name: string) => Obj | undefined,
    private readonly agent: SandboxClient,
    private readonly log: Logger,
    private readonly stats: StatsProvider,
  ) {
    this.streams = new KubeletStreams(agent, log);
  }

  async listen(): Promise<void> {
    const server = https.createServer({ cert: this.opts.certPem, key: this.opts.keyPem }, (req, res) => void this.handle(req, res));
    server.on('upgrade', (req, socket, head) => void this.upgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.opts.port, this.opts.host, resolve));
    this.server = server;
  }

  close(): void {
    this.server?.close();
    this.server?.closeAllConnections();
  }

  private authenticate(req: http.IncomingMessage): void {
    const got = Buffer.from(String(req.headers.authorization ?? ''));
    const want = Buffer.from(`Bearer ${this.opts.token}`);
    if (got.length !== want.length || !timingSafeEqual(got, want)) throw new KubicleError('Unauthorized', 'Unauthorized');
  }

  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    try {
      this.authenticate(req);
      const url = new URL(req.url ?? '/', 'https://kubelet');
      const [kind, ns, name, container, ...rest] = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      const pod = ns && name ? this.pods(ns, name) : undefined;
      if (!pod) throw new KubicleError('NotFound', `pod ${ns}/${name} is not on this node`);
      const q = url.searchParams;
      if (kind === 'exec' && container && !rest.length) return await this.streams.exec(req, socket, head, pod, container, q);
      if (kind === 'attach' && container && !rest.length) return await this.streams.attach(req, socket, head, pod, container, q);
      if (kind === 'portForward' && !container) return await this.streams.portForward(req, socket, head, pod, q);
      throw new KubicleError('NotFound', `no such kubelet API: ${url.pathname}`);
    } catch (err) {
      const e = err instanceof KubicleError ? err : new KubicleError('Internal', (err as Error).message);
      if (e.code === 'Internal') this.log.warn('kubelet stream error', { url: req.url, err });
      const status = httpStatus[e.code] ?? 500;
      socket.end(`HTTP/1.1 ${status} ${e.code}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(e.message)}\r\nConnection: close\r\n\r\n${e.message}`);
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      this.authenticate(req);
      const url = new URL(req.url ?? '/', 'https://kubelet');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (req.method === 'GET' && url.pathname === '/stats/summary') {
        const body = JSON.stringify(await this.stats.summary());
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      if (req.method !== 'GET' || parts[0] !== 'containerLogs' || parts.length !== 4) throw new KubicleError('NotFound', `no such kubelet API: ${url.pathname}`);
      const [, ns, name, container] = parts;
      const pod = this.pods(ns, name);
      if (!pod) throw new KubicleError('NotFound', `pod ${ns}/${name} is not on this node`);
      const q = url.searchParams;
      const num = (k: string) => (q.has(k) ? Number(q.get(k)) : undefined);
      const sinceSeconds = num('sinceSeconds');
      const opts: LogOptions = {
        follow: q.get('follow') === 'true',
        previous: q.get('previous') === 'true',
        timestamps: q.get('timestamps') === 'true',
        tailLines: num('tailLines'),
        limitBytes: num('limitBytes'),
        sinceTime: q.get('sinceTime') ?? (sinceSeconds !== undefined ? new Date(Date.now() - sinceSeconds * 1000).toISOString() : undefined),
      };
      const stream = await this.agent.logs(pod.metadata.uid, container, opts, abort.signal).catch((err) => {
        if (err instanceof KubicleError && err.code === 'BadRequest') throw new KubicleError('BadRequest', `previous terminated container "${container}" in pod "${name}" not found`);
        throw err;
      });
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-cache' });
      res.flushHeaders();
      await pipeline(stream, res).catch(() => {});
    } catch (err) {
      const e = err instanceof KubicleError ? err : new KubicleError('Internal', (err as Error).message);
      if (e.code === 'Internal') this.log.warn('kubelet API error', { url: req.url, err });
      if (!res.headersSent) {
        res.writeHead(httpStatus[e.code] ?? 500, { 'content-type': 'text/plain' });
        res.end(e.message);
      } else res.destroy();
    }
  }
}
