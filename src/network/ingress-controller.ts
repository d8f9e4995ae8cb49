import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { EventRecorder } from '../client/event-recorder.js';
import { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { type Backend, INGRESS_CONTROLLER, type IngressProblem, IngressRoutes } from './ingress-routes.js';
import { servicePortRules } from './service-rules.js';

export interface IngressControllerOptions {
  /** The address the controller serves on (from the load balancer pool; shown in each Ingress's status). */
  address: string;
  httpPort: number;
  httpsPort: number;
  /** The certificate for server names without a TLS Secret of their own. */
  defaultCert: { certPem: string; keyPem: string };
  /** The IngressClass installed for this controller, marked default when no other class is. */
  className: string;
  nodeName: string;
}

const COMPONENT = 'kubicle-ingress-controller';
/** Set to "false" on an Ingress to serve its TLS hosts over plain HTTP too, instead of redirecting. */
export const SSL_REDIRECT_ANNOTATION = 'ingress.kubicle.io/ssl-redirect';
const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'];

/**
 * The platform's ingress controller (networking.k8s.io/v1): an HTTP and HTTPS reverse proxy on one
 * address that routes by the Ingresses of its IngressClass (see IngressRoutes for the matching
 * rules) to the ready endpoints of the backend Services, in turn. TLS is terminated with the
 * Secrets the Ingresses name (chosen by SNI); plain HTTP to a TLS host is redirected (308).
 * Each served Ingress shows the address in status.loadBalancer; rules it cannot serve (conflicts,
 * bad Secrets) are reported as Warning events on the Ingress.
 *
 * Answers of its own: 404 when no rule or default backend matches, 503 when the backend Service
 * has no ready endpoint, 502 when the endpoint fails.
 */
export class IngressController {
  private routes = new IngressRoutes([], []);
  private readonly reported = new Map<string, string>();
  private readonly contexts = new Map<string, tls.SecureContext>();
  private readonly turn = new Map<string, number>();
  private endpointsOf: (b: Backend) => { ip: string; port: number }[] | undefined = () => undefined;
  private readonly upstream = new http.Agent({ keepAlive: true, maxSockets: 256 });

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: IngressControllerOptions,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, COMPONENT, log);
  }

  async run(signal: AbortSignal): Promise<void> {
    await this.ensureClass();
    const informers = new InformerFactory(this.client, this.log);
    const ingresses = informers.for('/apis/networking.k8s.io/v1/ingresses');
    const classes = informers.for('/apis/networking.k8s.io/v1/ingressclasses');
    const services = informers.for('/api/v1/services');
    const slices = informers.for('/apis/discovery.k8s.io/v1/endpointslices');
    const secrets = informers.for('/api/v1/secrets');
    let dirty = true;
    let pending: NodeJS.Timeout | undefined;
    // The table is rebuilt lazily (on the next request) and statuses and events written shortly
    // after a burst of changes, not once per change.
    const changed = () => {
      dirty = true;
      pending ??= setTimeout(() => {
        pending = undefined;
        void this.publish(this.current(), ingresses.list()).then(
          (settled) => settled || changed(),
          (err) => {
            this.log.warn('ingress status not written', { err });
            changed();
          },
        );
      }, 100);
    };
    this.current = () => {
      if (dirty) {
        dirty = false;
        this.routes = new IngressRoutes(ingresses.list(), classes.list());
        const rules = servicePortRules(services.list(), slices.list(), this.opts.nodeName);
        const svcs = new Map(services.list().map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
        this.endpointsOf = (b) => {
          const svc = svcs.get(`${b.namespace}/${b.service}`);
          const port = ((svc?.spec?.ports ?? []) as Obj[]).find((p) => (b.port.name ? p.name === b.port.name : p.port === b.port.number));
          if (!port) return undefined;
          return rules.find((r) => r.key === `${b.namespace}/${b.service}:${port.name ?? ''}:tcp`)?.endpoints ?? [];
        };
        this.loadCertificates(secrets.list());
      }
      return this.routes;
    };
    for (const inf of [ingresses, classes, services, slices, secrets]) inf.on({ add: changed, update: changed, delete: changed });
    informers.start(signal);
    await informers.synced();
    const plain = http.createServer((req, res) => this.serve(req, res, false));
    const secure = https.createServer(
      {
        cert: this.opts.defaultCert.certPem,
        key: this.opts.defaultCert.keyPem,
        SNICallback: (name, cb) => {
          const ref = this.current().certificateFor(name);
          cb(null, ref ? this.contexts.get(`${ref.namespace}/${ref.secret}`) : undefined);
        },
      },
      (req, res) => this.serve(req, res, true),
    );
    for (const [server, encrypted] of [[plain, false], [secure, true]] as const) {
      // A client that half-closes after its request (HTTP/1.0 tools, `nc`) still gets the answer,
      // as from any web server; Node's default would drop the request on the client's FIN.
      (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
      server.on('upgrade', (req, socket, head) => this.upgrade(req, socket as net.Socket, head, encrypted));
      server.on('clientError', (_err, socket) => socket.destroy());
    }
    await listen(plain, this.opts.httpPort, this.opts.address);
    await listen(secure, this.opts.httpsPort, this.opts.address);
    changed();
    this.log.info('ingress controller ready', { address: this.opts.address, http: this.opts.httpPort, https: this.opts.httpsPort });
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    clearTimeout(pending);
    plain.close();
    secure.close();
    plain.closeAllConnections();
    secure.closeAllConnections();
    this.upstream.destroy();
    await informers.stopped();
  }

  /** The routing table, rebuilt if anything changed since the last request. */
  private current: () => IngressRoutes = () => this.routes;

  private serve(req: http.IncomingMessage, res: http.ServerResponse, encrypted: boolean): void {
    const routes = this.current();
    const backend = routes.route(req.headers.host, req.url ?? '/');
    if (!encrypted && routes.hasTls(req.headers.host) && this.redirects(backend)) {
      res.writeHead(308, { Location: `https://${req.headers.host}${req.url}`, 'Content-Type': 'text/plain' }).end('Permanent Redirect\n');
      return;
    }
    const ep = backend && this.pick(backend);
    if (!backend) return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('404 Not Found: no Ingress rule matches\n');
    if (!ep) return void res.writeHead(503, { 'Content-Type': 'text/plain' }).end(`503 Service Unavailable: no ready endpoint for Service ${backend.namespace}/${backend.service}\n`);
    const headers = forwardedHeaders(req, encrypted);
    for (const h of hopByHop) delete headers[h];
    const up = http.request({ host: ep.ip, port: ep.port, method: req.method, path: req.url, headers, agent: this.upstream }, (answer) => {
      const out = { ...answer.headers };
      for (const h of hopByHop) delete out[h];
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      answer.pipe(res);
    });
    up.on('error', (err) => {
      this.log.debug('ingress backend failed', { backend: `${backend.namespace}/${backend.service}`, endpoint: `${ep.ip}:${ep.port}`, err });
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' }).end('502 Bad Gateway\n');
      else res.destroy();
    });
    req.pipe(up);
  }

  /** WebSocket and other upgrades: the request goes through, then bytes flow both ways untouched. */
  private upgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer, encrypted: boolean): void {
    socket.on('error', () => {});
    const backend = this.current().route(req.headers.host, req.url ?? '/');
    const ep = backend && this.pick(backend);
    if (!ep) return void socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
    const conn = net.connect({ host: ep.ip, port: ep.port }, () => {
      const headers = forwardedHeaders(req, encrypted);
      const lines = Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}: ${x}`) : v === undefined ? [] : [`${k}: ${v}`]));
      conn.write(`${req.method} ${req.url} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) conn.write(head);
      conn.pipe(socket);
      socket.pipe(conn);
    });
    conn.on('error', () => socket.destroy());
    socket.on('close', () => conn.destroy());
  }

  private redirects(backend: Backend | undefined): boolean {
    const ing = backend && this.routes.served.find((i) => `${i.metadata.namespace}/${i.metadata.name}` === backend.ingress);
    return ing?.metadata.annotations?.[SSL_REDIRECT_ANNOTATION] !== 'false';
  }

  /** The next ready endpoint of the backend, in turn; undefined when it has none. */
  private pick(b: Backend): { ip: string; port: number } | undefined {
    const eps = this.endpointsOf(b) ?? [];
    if (!eps.length) return undefined;
    const k = `${b.namespace}/${b.service}`;
    const n = this.turn.get(k) ?? 0;
    this.turn.set(k, n + 1);
    return eps[n % eps.length];
  }

  /** Secure contexts for the referenced TLS Secrets; one that is missing or unusable is a problem of its Ingresses. */
  private loadCertificates(secrets: Obj[]): void {
    const byName = new Map(secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
    this.contexts.clear();
    for (const ref of this.routes.secrets()) {
      const k = `${ref.namespace}/${ref.secret}`;
      const secret = byName.get(k);
      const users = this.routes.served.filter((i) => i.metadata.namespace === ref.namespace && ((i.spec?.tls ?? []) as Obj[]).some((t) => t.secretName === ref.secret));
      const problem = (message: string) => {
        for (const ingress of users) this.routes.problems.push({ ingress, reason: 'InvalidCertificate', message });
      };
      if (!secret) {
        problem(`TLS Secret ${k} does not exist; the default certificate is served`);
        continue;
      }
      try {
        const cert = Buffer.from(secret.data?.['tls.crt'] ?? '', 'base64').toString();
        const key = Buffer.from(secret.data?.['tls.key'] ?? '', 'base64').toString();
        this.contexts.set(k, tls.createSecureContext({ cert, key }));
      } catch (err) {
        problem(`TLS Secret ${k} holds no usable certificate and key (${(err as Error).message}); the default certificate is served`);
      }
    }
  }

  /** Statuses in line with what is served, and each new problem as an event; false if a write lost a race (try again). */
  private async publish(routes: IngressRoutes, all: Obj[]): Promise<boolean> {
    const served = new Set(routes.served.map((i) => `${i.metadata.namespace}/${i.metadata.name}`));
    const want = [{ ip: this.opts.address }];
    let settled = true;
    for (const ing of all) {
      const k = `${ing.metadata.namespace}/${ing.metadata.name}`;
      const have = (ing.status?.loadBalancer?.ingress ?? []) as Obj[];
      const next = served.has(k) ? want : have.some((i) => i.ip === this.opts.address) ? [] : undefined;
      if (!next || JSON.stringify(have) === JSON.stringify(next)) continue;
      const path = resourcePath({ group: 'networking.k8s.io', version: 'v1', plural: 'ingresses', namespace: ing.metadata.namespace, name: ing.metadata.name, subresource: 'status' });
      await this.client.request('PUT', path, { ...ing, status: { loadBalancer: next.length ? { ingress: next } : {} } }).catch((err) => {
        if (isCode(err, 'Conflict')) settled = false;
        else if (!isCode(err, 'NotFound')) throw err;
      });
    }
    const now = new Map<string, IngressProblem[]>();
    for (const p of routes.problems) now.set(p.ingress.metadata.uid, [...(now.get(p.ingress.metadata.uid) ?? []), p]);
    for (const [uid, problems] of now) {
      const text = problems.map((p) => p.message).join('; ');
      if (this.reported.get(uid) === text) continue;
      this.reported.set(uid, text);
      for (const p of problems) this.events.record(p.ingress, 'networking.k8s.io/v1', 'Ingress', 'Warning', p.reason, p.message);
    }
    for (const uid of [...this.reported.keys()]) if (!now.has(uid)) this.reported.delete(uid);
    return settled;
  }

  /** Installs this controller's IngressClass; it is the default unless another class already is. */
  private async ensureClass(): Promise<void> {
    const classes = (await this.client.get('/apis/networking.k8s.io/v1/ingressclasses')).items as Obj[];
    if (classes.some((c) => c.metadata.name === this.opts.className)) return;
    const anotherDefault = classes.some((c) => c.metadata.annotations?.['ingressclass.kubernetes.io/is-default-class'] === 'true');
    await this.client
      .create('/apis/networking.k8s.io/v1/ingressclasses', {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'IngressClass',
        metadata: { name: this.opts.className, annotations: anotherDefault ? {} : { 'ingressclass.kubernetes.io/is-default-class': 'true' } },
        spec: { controller: INGRESS_CONTROLLER },
      })
      .catch((err) => {
        if (!isCode(err, 'AlreadyExists')) throw err;
      });
  }
}

function forwardedHeaders(req: http.IncomingMessage, encrypted: boolean): http.OutgoingHttpHeaders {
  const client = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const prior = req.headers['x-forwarded-for'];
  return {
    ...req.headers,
    'x-forwarded-for': prior ? `${prior}, ${client}` : client,
    'x-forwarded-host': req.headers.host,
    'x-forwarded-proto': encrypted ? 'https' : 'http',
    'x-real-ip': client,
  };
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
}
