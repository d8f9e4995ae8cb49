import https from 'node:https';
import tls from 'node:tls';
import { type ErrorCode, KubicleError } from '../observe/errors.js';

/**
 * A small Kubernetes REST client over HTTPS with a bearer token or client certificate.
 * Failed calls throw KubicleError with the code matching the Status reason, so callers test
 * codes (NotFound, Conflict, …) rather than HTTP numbers.
 */
export interface ClientConfig {
  server: string;
  caPem: string;
  token?: string;
  certPem?: string;
  keyPem?: string;
  /** Reach the server over this unix socket (a tenant control plane's own components); TLS still checks the server's name against `server`. */
  socketPath?: string;
  /** Sent as User-Agent; the API server records writes under its first word (managedFields). */
  userAgent?: string;
}

// biome-ignore lint/suspicious/noExplicitAny: objects from the API are untyped JSON
export type Obj = Record<string, any>;

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Obj;
}

const reasonToCode: Record<string, ErrorCode> = {
  NotFound: 'NotFound',
  AlreadyExists: 'AlreadyExists',
  Conflict: 'Conflict',
  Invalid: 'Invalid',
  Forbidden: 'Forbidden',
  Unauthorized: 'Unauthorized',
  Expired: 'Gone',
  Gone: 'Gone',
  BadRequest: 'BadRequest',
  Timeout: 'Timeout',
};

export function resourcePath(r: { group?: string; version: string; plural: string; namespace?: string; name?: string; subresource?: string }): string {
  let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespace) p += `/namespaces/${encodeURIComponent(r.namespace)}`;
  p += `/${r.plural}`;
  if (r.name) p += `/${encodeURIComponent(r.name)}`;
  if (r.subresource) p += `/${r.subresource}`;
  return p;
}

export class KubeClient {
  private readonly agent: https.Agent;
  private readonly base: URL;

  constructor(
    private readonly cfg: ClientConfig,
    agent?: https.Agent,
  ) {
    this.base = new URL(cfg.server);
    // One TLS context for every connection: given the PEMs instead, each new connection parses
    // them again (a burst of binds opens dozens).
    this.agent = agent ?? new https.Agent({ keepAlive: true, maxSockets: 64, secureContext: tls.createSecureContext({ ca: cfg.caPem, cert: cfg.certPem, key: cfg.keyPem }) });
  }

  /** The CA this client trusts for the API server (what pods get as ca.crt). */
  get caPem(): string {
    return this.cfg.caPem;
  }

  /** The same client (and connections) under another User-Agent; closing either closes both. */
  withUserAgent(userAgent: string): KubeClient {
    return new KubeClient({ ...this.cfg, userAgent }, this.agent);
  }

  private options(method: string, path: string, headers: Record<string, string>): https.RequestOptions {
    const h: Record<string, string> = { Accept: 'application/json', 'User-Agent': this.cfg.userAgent ?? 'kubicle', ...headers };
    if (this.cfg.token) h.Authorization = `Bearer ${this.cfg.token}`;
    return { method, host: this.base.hostname, port: this.base.port, socketPath: this.cfg.socketPath, path, agent: this.agent, headers: h };
  }

  async request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Obj> {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(this.options(method, path, data ? { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(data)) } : {}), (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: Obj = {};
          try {
            parsed = text ? JSON.parse(text) : {};
          } catch {
            parsed = { message: text };
          }
          if ((res.statusCode ?? 500) >= 400) {
            reject(new KubicleError(reasonToCode[parsed.reason] ?? 'Internal', parsed.message ?? `HTTP ${res.statusCode}`));
          } else resolve(parsed);
        });
        res.on('error', reject);
      });
      req.on('error', (err) => reject(new KubicleError('Unavailable', err.message, { cause: err })));
      if (data) req.write(data);
      req.end();
    });
  }

  get(path: string): Promise<Obj> {
    return this.request('GET', path);
  }
  create(path: string, obj: Obj): Promise<Obj> {
    return this.request('POST', path, obj);
  }
  update(path: string, obj: Obj): Promise<Obj> {
    return this.request('PUT', path, obj);
  }
  patch(path: string, patch: unknown, type = 'application/merge-patch+json'): Promise<Obj> {
    return this.request('PATCH', path, patch, type);
  }
  delete(path: string, opts?: Obj): Promise<Obj> {
    return this.request('DELETE', path, opts);
  }

  /**
   * Streams watch events until the server ends the stream, the signal aborts, or an ERROR
   * event arrives (delivered to onEvent, then the promise resolves).
   */
  watch(path: string, onEvent: (ev: WatchEvent) => void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = https.request(this.options('GET', path, {}), (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            let s: Obj = {};
            try {
              s = JSON.parse(Buffer.concat(chunks).toString());
            } catch {}
            reject(new KubicleError(reasonToCode[s.reason] ?? 'Internal', s.message ?? `HTTP ${res.statusCode}`));
          });
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let i = buf.indexOf('\n');
          while (i >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.trim()) onEvent(JSON.parse(line) as WatchEvent);
            i = buf.indexOf('\n');
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', (err) => (signal?.aborted ? resolve() : reject(new KubicleError('Unavailable', err.message, { cause: err }))));
      signal?.addEventListener('abort', () => req.destroy(), { once: true });
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
