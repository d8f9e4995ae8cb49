import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import { formatIPv4 } from '../api/ipv4.js';
import { admissionGroup } from '../api/kinds/admissionregistration.js';
import type { Registry } from '../api/registry.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { Registry as MetricsRegistry } from '../observe/metrics.js';
import type { Backend } from '../storage/backend.js';
import { CachedObjects } from './admission/cached-objects.js';
import { DefaultStorageClass } from './admission/default-storage-class.js';
import { DefaultTolerationSeconds } from './admission/default-toleration-seconds.js';
import { LimitRanger } from './admission/limit-ranger.js';
import { NamespaceLifecycle } from './admission/namespace-lifecycle.js';
import { PodSecurity } from './admission/pod-security.js';
import { Priority } from './admission/priority.js';
import { RbacEscalation } from './admission/rbac-escalation.js';
import { ResourceQuotaAdmission } from './admission/resource-quota.js';
import { RuntimeClassAdmission } from './admission/runtime-class.js';
import { ServiceAccountAdmission } from './admission/service-account.js';
import { ServiceAllocation, type ServiceRanges, serviceRanges } from './admission/service-allocation.js';
import { MutatingWebhooks, ValidatingWebhooks, WebhookConfigurations } from './admission/webhooks.js';
import { Authenticator, type UserInfo } from './authn.js';
import { type Authorizer, attributesOf, forbiddenMessage } from './authz/authorizer.js';
import { impersonate } from './authz/impersonation.js';
import { RbacAuthorizer } from './authz/rbac-authorizer.js';
import { bootstrapRbac } from './authz/rbac-defaults.js';
import { Reviews } from './authz/reviews.js';
import { bootstrap } from './bootstrap.js';
import { runCompactor } from './compactor.js';
import { CrdRegistrar } from './crd-registrar.js';
import { aggregated, aggregatedContentType, apiGroup, apiGroupList, apiResourceList, apiVersions } from './discovery.js';
import { Evictor } from './eviction.js';
import { SchemaFieldChecker } from './field-validation.js';
import { Health, type HealthCheck, within } from './health.js';
import { KubeletConnector } from './kubelet-connector.js';
import { MetricsApi } from './metrics-api.js';
import { ObjectStore } from './object-store.js';
import { OpenApiDocuments, openapiV2ContentType } from './openapi.js';
import { ensurePki, type Pki } from './pki.js';
import { PodLogs } from './pod-logs.js';
import { PodStreams } from './pod-streams.js';
import { parseResourcePath } from './request-info.js';
import { ResourceHandler } from './resource-handler.js';
import { sendError, sendJson } from './respond.js';
import { ServiceAccountTokens } from './service-account-tokens.js';
import { kubeVersion, versionInfo } from './version.js';
import { WatchCache } from './watch-cache.js';

/**
 * The Kubernetes-compatible API server: HTTPS, authentication, discovery, OpenAPI, health,
 * metrics and the resource handlers, over one Backend. `run` serves until the signal aborts.
 */
export interface ApiServerOptions {
  backend: Backend;
  registry: Registry;
  /** Where the PKI lives (ca, serving and admin certificates). */
  pkiDir: string;
  host: string;
  port: number;
  /** Extra names and addresses for the serving certificate. */
  sans?: string[];
  log: Logger;
  /** Contents of a static token file (token,user,uid,"groups"). */
  tokenFile?: string;
  compactIntervalMs?: number;
  /** Cluster IPs of Services come from here (default 10.96.0.0/12). */
  serviceCidr?: string;
  /** Node ports, "min-max" (default 30000-32767). */
  nodePortRange?: string;
  /**
   * Listen on this unix socket instead of host:port. host and port then say where clients reach
   * the server (a tenant control plane behind the provider's gateway): the serving certificate,
   * the `kubernetes` Service and `url` use them.
   */
  socketPath?: string;
  /**
   * Also serve on this TCP address: where the cluster's own pods reach it (a tenant control
   * plane's address on its cluster network). The `kubernetes` Service's endpoints then name it.
   */
  inCluster?: { host: string; port: number };
  /**
   * 'none': another replica, one the cluster's pods can reach, is the `kubernetes` Service's
   * endpoint; this server leaves the Service and its endpoints as they are (upstream's
   * --endpoint-reconciler-type). By default this server makes itself the endpoint at start.
   */
  endpointReconciler?: 'master-count' | 'none';
  /**
   * Decides each authenticated request: an authorizer, or 'rbac' for RBAC over this server's own
   * roles and bindings (with upstream's default roles, and escalation prevention). Absent, every
   * authenticated user may do everything.
   */
  authorizer?: Authorizer | 'rbac';
}

/** How long readyz waits for the store (upstream's --etcd-readycheck-timeout is 2 s; a prober here waits 2 s in all). */
const storeCheckTimeoutMs = 1000;

export class ApiServer {
  readonly ready: Promise<void>;
  private markReady!: () => void;
  /** Settles once the first request has had its answer. */
  private readonly firstAnswered: Promise<void>;
  private markFirstAnswered?: () => void;
  /** Requests begun so far: what `answeredThenQuiet` watches for a pause. */
  private begun = 0;
  /** A token for in-process clients (controllers), like upstream's loopback client. */
  readonly loopbackToken = randomBytes(32).toString('hex');
  readonly metrics = new MetricsRegistry();
  private pki?: Pki;
  private server?: https.Server;
  private readonly authn = new Authenticator();
  private readonly cache: WatchCache;
  private readonly store: ObjectStore;
  private readonly lifecycle: NamespaceLifecycle;
  private readonly priority: Priority;
  private readonly quota: ResourceQuotaAdmission;
  private readonly allocation: ServiceAllocation;
  private readonly ranges: ServiceRanges;
  private readonly handler: ResourceHandler;
  private readonly podStreams: PodStreams;
  private readonly metricsApi: MetricsApi;
  private readonly openapi: OpenApiDocuments;
  private readonly crds?: CrdRegistrar;
  private readonly webhooks?: WebhookConfigurations;
  private readonly namespaces: CachedObjects;
  private readonly limits: LimitRanger;
  private readonly podSecurity: PodSecurity;
  private readonly authorizer?: Authorizer;
  private readonly rbac?: RbacAuthorizer;
  private readonly reviews: Reviews;
  private tokens?: ServiceAccountTokens;
  private readonly requests = this.metrics.counter('apiserver_request_total', 'Requests by verb, resource and HTTP code.');
  private readonly streamRequests = this.metrics.counter('apiserver_stream_requests_total', 'Upgrade requests for pod streams by subresource, client protocol and HTTP code.');
  private readonly latency = this.metrics.histogram('apiserver_request_duration_seconds', 'Request latency by verb and resource.');
  private isReady = false;
  private readonly health: Health;

  constructor(private readonly opts: ApiServerOptions) {
    const ping: HealthCheck = { name: 'ping', check: async () => {} };
    // A key nobody writes: one read of the store, as cheap as the store allows. Upstream names
    // this check etcd whatever the store, and probes exclude it by that name.
    const store: HealthCheck = { name: 'etcd', check: () => within(opts.backend.get('/healthz'), storeCheckTimeoutMs, 'store read').then(() => {}) };
    const serving: HealthCheck = {
      name: 'shutdown',
      check: async () => {
        if (!this.isReady) throw new Error('not serving: starting or shutting down');
      },
    };
    this.health = new Health({ livez: [ping], readyz: [ping, store, serving], healthz: [ping, store] });
    this.ready = new Promise((r) => {
      this.markReady = r;
    });
    this.firstAnswered = new Promise((r) => {
      this.markFirstAnswered = r;
    });
    this.lifecycle = new NamespaceLifecycle(opts.registry);
    this.priority = new Priority(opts.registry, () => this.store);
    this.quota = new ResourceQuotaAdmission(opts.registry, () => this.store);
    this.limits = new LimitRanger(opts.registry, () => this.store);
    // Followed once for every plugin that reads namespace labels.
    this.namespaces = new CachedObjects(opts.registry.mustLookup('', 'v1', 'namespaces'), () => this.store);
    const pods = opts.registry.mustLookup('', 'v1', 'pods');
    this.podSecurity = new PodSecurity(this.namespaces, async (ns) => (await this.store.list(pods, ns, { labels: [], fields: [] })).items, opts.log);
    this.ranges = serviceRanges(opts.serviceCidr ?? '10.96.0.0/12', opts.nodePortRange ?? '30000-32767');
    this.allocation = new ServiceAllocation(opts.registry, opts.backend, this.ranges, opts.log);
    if (opts.authorizer === 'rbac') this.rbac = new RbacAuthorizer(opts.registry, () => this.store);
    this.authorizer = this.rbac ?? (opts.authorizer === 'rbac' ? undefined : opts.authorizer);
    this.reviews = new Reviews(this.authorizer, this.rbac, this.authn);
    if (opts.registry.lookup(admissionGroup, 'v1', 'validatingwebhookconfigurations')) this.webhooks = new WebhookConfigurations(opts.registry, this.namespaces, () => this.store, opts.log);
    this.store = new ObjectStore(opts.backend, [
      this.lifecycle,
      new DefaultTolerationSeconds(),
      new DefaultStorageClass(opts.registry, () => this.store),
      this.limits,
      new ServiceAccountAdmission(opts.registry, () => this.store),
      this.podSecurity,
      this.priority,
      new RuntimeClassAdmission(opts.registry, () => this.store),
      this.allocation,
      ...(this.rbac ? [new RbacEscalation(this.rbac)] : []),
      // Webhooks after the built-in plugins, mutating then validating, as upstream orders them.
      ...(this.webhooks ? [new MutatingWebhooks(this.webhooks), new ValidatingWebhooks(this.webhooks)] : []),
      // Last, as upstream: it charges what the others have settled.
      this.quota,
    ]);
    this.cache = new WatchCache(opts.backend, opts.log);
    const kubelets = new KubeletConnector(opts.registry, this.store, () => this.credentials.ca.cert, this.loopbackToken);
    this.handler = new ResourceHandler(opts.registry, this.store, this.cache, new SchemaFieldChecker(), new Evictor(opts.registry, this.store), new PodLogs(opts.registry, this.store, kubelets), {
      review: (rt, ns, body, user) => this.reviews.create(rt, ns, body, user),
      requestToken: (ns, name, body) => {
        if (!this.tokens) throw new KubicleError('Unavailable', 'service account tokens are not ready');
        return this.tokens.request(ns, name, body);
      },
    });
    this.podStreams = new PodStreams(opts.registry, this.store, kubelets, opts.log);
    this.metricsApi = new MetricsApi(opts.registry, this.store, kubelets);
    this.openapi = new OpenApiDocuments(opts.registry, kubeVersion.gitVersion);
    if (opts.registry.lookup('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')) this.crds = new CrdRegistrar(opts.registry, () => this.store, opts.log);
    this.authn.addToken(this.loopbackToken, { name: 'system:apiserver', groups: ['system:masters'] });
    if (opts.tokenFile) this.authn.loadTokenFile(opts.tokenFile);
    this.metrics.gauge('apiserver_registered_watchers', 'Watchers served from the watch cache.').set({}, () => this.cache.watchers);
  }

  /** The TCP port served: the one bound, once bound (asked as 0: any free one). */
  private get port(): number {
    const a = this.server?.address();
    return typeof a === 'object' && a ? a.port : this.opts.port;
  }

  get url(): string {
    const host = this.opts.host === '0.0.0.0' || this.opts.host === '::' ? '127.0.0.1' : this.opts.host;
    return `https://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  get credentials(): Pki {
    if (!this.pki) throw new Error('not started');
    return this.pki;
  }

  async run(signal: AbortSignal): Promise<void> {
    const log = this.opts.log;
    const kubernetesIP = formatIPv4(this.ranges.serviceCidr.base + 1);
    const inCluster = this.opts.inCluster;
    this.pki = await ensurePki(this.opts.pkiDir, servingNames(this.opts.host, [kubernetesIP, ...(inCluster ? [inCluster.host] : []), ...(this.opts.sans ?? [])]));
    await this.cache.start();
    await this.lifecycle.bind(this.store, this.cache);
    await this.priority.bind(this.cache);
    await this.quota.bind(this.cache);
    await this.limits.bind(this.cache);
    await this.namespaces.bind(this.cache);
    await this.rbac?.bind(this.cache);
    await this.crds?.bind(this.cache);
    await this.webhooks?.bind(this.cache);
    this.tokens = new ServiceAccountTokens(this.pki.serviceAccountKey, this.opts.registry, () => this.store);
    const tokens = this.tokens;
    this.authn.addTokenAuthenticator((t) => tokens.authenticate(t));
    const server = https.createServer(
      { key: this.pki.serving.key, cert: this.pki.serving.cert, ca: this.pki.ca.cert, requestCert: true, rejectUnauthorized: false },
      (req, res) => void this.serve(req, res),
    );
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.serveUpgrade(req, socket, head));
    // Watches are long-lived: no request timeout; idle keep-alive connections close after a while.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    server.keepAliveTimeout = 65_000;
    this.server = server;
    // A socket file left by an earlier run would make listen fail; nothing else may own this path.
    if (this.opts.socketPath) await rm(this.opts.socketPath, { force: true });
    const listen = () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        if (this.opts.socketPath) server.listen(this.opts.socketPath, () => resolve());
        else server.listen(this.opts.port, this.opts.host, () => resolve());
      });
    // Port 0 asks for any free port, known once bound: the kubernetes Service must name the real
    // one. Nobody knows the port before it is printed, after start-up, so nothing is served early.
    if (!this.opts.socketPath && this.opts.port === 0) await listen();
    const self = this.opts.endpointReconciler === 'none' ? undefined : (inCluster ?? { host: this.opts.host, port: this.port });
    await bootstrap(this.opts.registry, this.store, self, kubernetesIP);
    if (this.rbac) await bootstrapRbac(this.opts.registry, this.store);
    const repairing = this.repairAllocations(signal);
    if (!server.listening) await listen();
    // The in-cluster listener hands its connections to the same server: one TLS setup, one handler.
    const podListener = inCluster ? net.createServer((socket) => server.emit('connection', socket)) : undefined;
    if (podListener && inCluster) {
      await new Promise<void>((resolve, reject) => podListener.once('error', reject).listen(inCluster.port, inCluster.host, () => resolve()));
    }
    const compactor = runCompactor(this.opts.backend, log, signal, this.opts.compactIntervalMs);
    this.isReady = true;
    log.info('apiserver serving', { url: this.url, uptimeMs: Math.round(performance.now()) });
    this.markReady();
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    this.isReady = false;
    this.crds?.stop();
    this.cache.stop();
    podListener?.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await compactor;
    await repairing;
    log.info('apiserver stopped');
  }

  /** Keeps Service allocations in step with Services: now, then every minute (upstream's repair loops). */
  private async repairAllocations(signal: AbortSignal): Promise<void> {
    const services = this.opts.registry.mustLookup('', 'v1', 'services');
    while (!signal.aborted) {
      try {
        await this.allocation.repair((await this.store.list(services, undefined, { labels: [], fields: [] })).items);
      } catch (err) {
        this.opts.log.warn('service allocation repair failed', { err });
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 60_000);
        signal.addEventListener(
          'abort',
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
    }
  }

  /**
   * Settles once a request has had its answer and then none has begun for `quietMs`: what a
   * control plane waits on before starting its components, so that the requests of whoever woke
   * or created it (a kubectl's discovery and its call; the provider, then the tenant's first
   * request) are not served behind their start.
   */
  async answeredThenQuiet(quietMs: number): Promise<void> {
    await this.firstAnswered;
    for (let seen = -1; seen !== this.begun; ) {
      seen = this.begun;
      await new Promise((r) => setTimeout(r, quietMs).unref());
    }
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    this.begun++;
    if (this.markFirstAnswered) {
      res.once('close', this.markFirstAnswered);
      this.markFirstAnswered = undefined;
    }
    const url = new URL(req.url ?? '/', 'https://localhost');
    const r = safeParse(url.pathname);
    const verb = verbOf(req.method ?? 'GET', r?.name, url.searchParams);
    const resource = r?.resource ?? url.pathname.split('/')[1] ?? '';
    let user: UserInfo | undefined;
    try {
      user = impersonate(req.headersDistinct, await this.authn.authenticate(req), this.authorizer);
      this.authorize(user, req.method ?? 'GET', url, r);
      await this.route(req, res, url, user);
    } catch (err) {
      const status = sendError(res, err, r ? { name: r.name, kind: r.resource, group: r.group } : undefined);
      if (status.code >= 500) this.opts.log.error('request failed', { method: req.method, path: url.pathname, err });
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const code = String(res.statusCode);
      this.requests.inc({ verb, resource, code });
      if (verb !== 'WATCH') this.latency.observe({ verb, resource }, seconds);
      const line = { method: req.method, path: url.pathname, user: user?.name, code: res.statusCode, ms: Math.round(seconds * 1000) };
      if (req.method === 'GET') this.opts.log.debug('request', line);
      else this.opts.log.info('request', line);
    }
  }

  /** Upgrade requests: the pods' exec, attach and portforward streams; anything else is refused. */
  private async serveUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    let user: UserInfo | undefined;
    let code = 101;
    const r = safeParse(url.pathname.replace(/\/+$/, ''));
    socket.on('error', () => {});
    try {
      user = impersonate(req.headersDistinct, await this.authn.authenticate(req), this.authorizer);
      this.authorize(user, req.method ?? 'GET', url, r);
      if (!r || !PodStreams.handles(r)) throw new KubicleError('BadRequest', `upgrade is only supported for pods' exec, attach and portforward, not ${url.pathname}`);
      await this.podStreams.upgrade(req, socket, head, r, url.searchParams);
    } catch (err) {
      code = PodStreams.refuse(socket, err);
      if (code >= 500) this.opts.log.error('stream request failed', { path: url.pathname, err });
    } finally {
      this.requests.inc({ verb: 'CONNECT', resource: r?.resource ?? '', code: String(code) });
      this.streamRequests.inc({ subresource: r?.subresource ?? '', protocol: String(req.headers.upgrade ?? '').toLowerCase(), code: String(code) });
      this.opts.log.info('request', { method: req.method, path: url.pathname, upgrade: req.headers.upgrade, user: user?.name, code });
    }
  }

  /** Throws Forbidden, worded as upstream's, when the authorizer denies the request. */
  private authorize(user: UserInfo, method: string, url: URL, r: ReturnType<typeof safeParse>): void {
    const authorizer = this.authorizer;
    if (!authorizer) return;
    const attrs = attributesOf(method, url, r);
    const decision = authorizer.authorize(user, attrs);
    if (!decision.allowed) throw new KubicleError('Forbidden', forbiddenMessage(user, attrs, decision.reason));
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, user: UserInfo): Promise<void> {
    const p = url.pathname.replace(/\/+$/, '') || '/';
    const registry = this.opts.registry;
    const accept = String(req.headers.accept ?? '');
    const wantsAggregated = (version: string) => accept.includes(`g=apidiscovery.k8s.io;v=${version};as=APIGroupDiscoveryList`);
    const discoveryVersion = wantsAggregated('v2') ? 'v2' : wantsAggregated('v2beta1') ? 'v2beta1' : undefined;
    if (req.method !== 'GET' && !p.startsWith('/api')) throw new KubicleError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
    if (Health.serves(p)) return this.health.answer(p, url.searchParams, res);
    switch (p) {
      case '/version':
        return sendJson(res, 200, versionInfo());
      case '/metrics':
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
        res.end(this.metrics.render());
        return;
      case '/api':
        if (discoveryVersion) return sendJson(res, 200, aggregated(registry, true, discoveryVersion), aggregatedContentType(discoveryVersion));
        return sendJson(res, 200, apiVersions(`${this.opts.host}:${this.port}`));
      case '/apis':
        if (discoveryVersion) return sendJson(res, 200, aggregated(registry, false, discoveryVersion), aggregatedContentType(discoveryVersion));
        return sendJson(res, 200, apiGroupList(registry));
      case '/openapi/v2': {
        const doc = await this.openapi.v2();
        const etag = `"${doc.hash}"`;
        if (req.headers['if-none-match'] === etag) {
          res.writeHead(304, { ETag: etag });
          res.end();
          return;
        }
        const [type, body] = accept.includes('protobuf') ? [openapiV2ContentType, doc.protobuf] : ['application/json', Buffer.from(doc.json)];
        res.writeHead(200, { 'Content-Type': type, 'Content-Length': String(body.length), ETag: etag, Vary: 'Accept' });
        res.end(body);
        return;
      }
      case '/openapi/v3':
        return sendJson(res, 200, await this.openapi.index());
    }
    if (p.startsWith('/openapi/v3/')) {
      const parts = p.slice('/openapi/v3/'.length).split('/');
      const [group, version] = parts[0] === 'api' ? ['', parts[1]] : [parts[1], parts[2]];
      const doc = await this.openapi.document(group, version);
      if (!doc) throw new KubicleError('NotFound', 'the server could not find the requested resource');
      // Documents are addressed by their hash, so a client may keep one as long as it likes.
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'public, immutable', ETag: `"${doc.hash}"` });
      res.end(doc.json);
      return;
    }
    if (req.method === 'GET' && (await this.metricsApi.serve(res, p, url.searchParams, accept))) return;
    const parts = p.split('/').filter(Boolean);
    if (parts[0] === 'api' && parts.length === 2) {
      const list = apiResourceList(registry, '', parts[1]);
      if (list) return sendJson(res, 200, list);
    }
    if (parts[0] === 'apis' && parts.length === 2) {
      const g = apiGroup(registry, parts[1]);
      if (g) return sendJson(res, 200, g);
    }
    if (parts[0] === 'apis' && parts.length === 3) {
      const list = apiResourceList(registry, parts[1], parts[2]);
      if (list) return sendJson(res, 200, list);
    }
    const rr = parseResourcePath(p);
    if (rr) return this.handler.handle(req, res, rr, url.searchParams, user);
    throw new KubicleError('NotFound', 'the server could not find the requested resource');
  }
}

/** Names and addresses the serving certificate covers: every address this server can be reached at. */
function servingNames(host: string, extra: string[]): string[] {
  const names = ['127.0.0.1', 'localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', ...extra];
  if (host === '0.0.0.0' || host === '::') {
    for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) names.push(a.address);
    names.push(os.hostname());
  } else names.push(host);
  return [...new Set(names)];
}

function safeParse(p: string) {
  try {
    return parseResourcePath(p);
  } catch {
    return undefined;
  }
}

function verbOf(method: string, name: string | undefined, q: URLSearchParams): string {
  if (method === 'GET') return q.get('watch') === 'true' || q.get('watch') === '1' ? 'WATCH' : name ? 'GET' : 'LIST';
  if (method === 'DELETE' && !name) return 'DELETECOLLECTION';
  return method === 'PUT' ? 'UPDATE' : method;
}

