import { chmod, mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { providerGroup } from '../api/kinds/provider.js';
import { LOCAL_PATH_ROOT } from '../api/local-path.js';
import { type KubeClient, resourcePath } from '../client/kube-client.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { childName } from '../sandbox/api/host-paths.js';
import type { ContainerSpec, ContainerStatus, SandboxSpec, SandboxStatus } from '../sandbox/api/types.js';
import { formatLabelSelector, parseLabelSelector, readJson, refuseUpgrade, send, sendError } from '../sandbox/api/wire.js';
import type { Amount } from './placement.js';

/** Who a gateway serves: one tenant cluster, as the provider knows it. */
export interface ClusterScope {
  /** The Cluster's uid: its sandboxes on the host are named and labelled by it. */
  uid: string;
  tenant: string;
  name: string;
  /** The host agent's network the cluster's pods join (its own, isolated). */
  network: string;
  /** The host the cluster is placed on: its pods run there, beside its control plane. */
  host: string;
  /**
   * The host directory holding the cluster's local volumes: its `LOCAL_PATH_ROOT/<name>`
   * directories are `<volumes>/<name>` here. Nobody else's; apart from the control plane's data.
   */
  volumes: string;
  /**
   * What the tenant may use at once, summed over all its sandboxes on all hosts (control planes
   * included); absent when unlimited. Read on every placement, so quota changes apply at once.
   */
  quota: () => { cpuMillis?: number; memoryBytes?: number };
}

/** Where each host's agent listens, by Host name, and how full each host is (provider/hosts.ts). */
export interface AgentSockets {
  /** The socket of a registered host's Sandbox API; Unavailable when there is no such host. */
  socket(host: string): string;
  /** Every registered host. */
  names(): string[];
  /**
   * What a host may allocate (its capacity times its allocation ratio) and what its running
   * sandboxes, pods and control planes, may use now (their limits); undefined when its capacity
   * is not known yet. Rejects when its agent does not answer.
   */
  room(host: string): Promise<{ capacity: Amount; allocated: Amount } | undefined>;
}

/** Labels the gateway puts on every sandbox it places, and lists by. */
export const clusterLabel = 'kubicle.io/cluster-uid';
export const tenantLabel = 'kubicle.io/tenant';
/** A sandbox's CPU (millicores) and memory (bytes) limits, which the tenant's quota counts. */
export const cpuLabel = 'kubicle.io/cpu-millis';
export const memoryLabel = 'kubicle.io/memory-bytes';
const runtimeLabel = 'kubicle.io/runtime';

/** A pod that sets no limit gets these (as a LimitRange default would), so every sandbox counts against the quota. */
export const defaultPodLimits = { cpuMillis: 1000, memoryBytes: 512 * 2 ** 20, pids: 1024 };
/** Capabilities a runc container may add: the container runtimes' default set. Anything more reaches the shared kernel. */
const allowedCaps = new Set(['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP', 'NET_BIND_SERVICE', 'NET_RAW', 'SYS_CHROOT', 'MKNOD', 'AUDIT_WRITE', 'SETFCAP']);
const idPattern = /^[a-z0-9][a-z0-9.-]{0,48}$/;

/** The host's sandbox id for a cluster's sandbox `id`: unique per cluster, and never another cluster's. */
export function hostSandboxId(clusterUid: string, id: string): string {
  return `k${clusterUid.replace(/-/g, '').slice(0, 12)}.${id}`;
}

/**
 * The Sandbox API as a tenant cluster's virtual kubelet sees it (DESIGN §2.1): a unix socket the
 * provider serves into the cluster's control-plane sandbox, in front of the host agent. The
 * kubelet inside runs unchanged; here every request is held to its cluster: sandbox ids are
 * mapped into the cluster's own name space on the host and lists show only its sandboxes; pods
 * join the cluster's network and no other; its local volumes (the directories its local-path
 * provisioner names) are the cluster's own directories on the host, and any other host path,
 * host networking, privileged runc
 * containers and capabilities beyond the default set are refused; every sandbox gets limits and
 * all of a tenant's together stay within its quota. Each placed sandbox is recorded as a provider
 * Sandbox object, so the tenant and the operator see where its workloads run.
 */
export class SandboxGateway {
  private readonly servers = new Map<string, http.Server>();
  /** Placements per tenant and per host, one at a time: two at once could each fit the quota, or the host, and together not. */
  private readonly placing = new Map<string, Promise<unknown>>();

  constructor(
    private readonly agents: AgentSockets,
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  /** Serves `scope` on `socketPath` (replacing a stale socket), readable by the control plane's user. Idempotent. */
  async open(scope: ClusterScope, socketPath: string): Promise<void> {
    if (this.servers.has(scope.uid)) return;
    await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o755 });
    await rm(socketPath, { force: true });
    const server = http.createServer((req, res) => void this.handle(scope, req, res));
    server.on('upgrade', (req, socket, head) => void this.upgrade(scope, req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    await chmod(socketPath, 0o666);
    this.servers.set(scope.uid, server);
  }

  async close(uid: string): Promise<void> {
    const server = this.servers.get(uid);
    this.servers.delete(uid);
    // Its kubelet's kept-alive connections too: nothing more is placed for a cluster being stopped.
    server?.closeAllConnections();
    if (server) await new Promise((r) => server.close(r));
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.servers.keys()].map((uid) => this.close(uid)));
  }

  private async handle(scope: ClusterScope, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://gateway');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'v1') throw new KubicleError('NotFound', `no such API: ${url.pathname}`);
      // Resolving and pulling an image by name, yes; listing the host's images (other tenants' names), no.
      const image = parts[1] === 'images' && ((req.method === 'GET' && parts[2] === 'resolve') || (req.method === 'POST' && parts[2] === 'pull'));
      if (parts[1] === 'version' || image) return await this.pass(scope.host, req, res, url.pathname + url.search);
      if (parts[1] === 'host-dirs' && parts.length === 2 && req.method === 'DELETE') {
        const dir = localVolumeDir(scope, url.searchParams.get('path') ?? '');
        // The provider keeps a cluster's directories on the host it shares with its agent, as it
        // does the cluster's data directory.
        await rm(dir, { recursive: true, force: true });
        return send(res, 200, {});
      }
      if (parts[1] !== 'sandboxes') throw new KubicleError('Forbidden', `${url.pathname} is not available to a tenant cluster`);
      const id = parts[2];
      if (id === undefined) {
        if (req.method === 'GET') return send(res, 200, (await this.list(scope, parseLabelSelector(url.searchParams.get('labelSelector')))).map((s) => toTenant(scope, s)));
        if (req.method === 'POST') {
          const body = (await readJson(req)) as { spec?: SandboxSpec; runtime?: string };
          // Always the tenant's turn first, then the host's: one order, so no two wait on each other.
          const placed = await this.inTurn(`tenant/${scope.tenant}`, () => this.inTurn(`host/${scope.host}`, () => this.place(scope, body)));
          return send(res, 201, toTenant(scope, placed));
        }
        throw new KubicleError('NotFound', `no route for ${req.method} ${url.pathname}`);
      }
      if (!idPattern.test(id)) throw new KubicleError('Invalid', `sandbox id ${JSON.stringify(id)} must match ${idPattern.source}`);
      const hostId = hostSandboxId(scope.uid, id);
      const rest = parts.slice(3);
      const target = ['', 'v1', 'sandboxes', hostId, ...rest].map(encodeURIComponent).join('/') + url.search;
      if (req.method === 'POST' && rest.length === 1 && rest[0] === 'containers') {
        const spec = (await readJson(req)) as ContainerSpec;
        await this.checkContainer(scope.host, hostId, spec);
        const r = await this.call<ContainerStatus>(scope.host, 'POST', target, spec);
        return send(res, r.status, r.body && { ...r.body, id: unprefix(scope, r.body.id) });
      }
      if (req.method === 'GET' && rest.length === 0) {
        const r = await this.call<SandboxStatus>(scope.host, 'GET', target);
        return send(res, r.status, r.status < 300 ? toTenant(scope, r.body) : r.body);
      }
      if (req.method === 'DELETE' && rest.length === 0) {
        const r = await this.call(scope.host, 'DELETE', target);
        if (r.status < 300) await this.forget(scope, hostId);
        return send(res, r.status, r.body);
      }
      return await this.pass(scope.host, req, res, target);
    } catch (err) {
      if (sendError(res, err).code === 'Internal') this.log.error('sandbox gateway error', { cluster: scope.uid, url: req.url, err });
    }
  }

  /** Runs `work` after every earlier one of the same `key` has ended. */
  private inTurn<T>(key: string, work: () => Promise<T>): Promise<T> {
    const next = (this.placing.get(key) ?? Promise.resolve()).catch(() => {}).then(work);
    this.placing.set(key, next);
    return next.finally(() => {
      if (this.placing.get(key) === next) this.placing.delete(key);
    });
  }

  /** Exec, attach and port-forward: the path mapped into the cluster's sandboxes, then the bytes carried both ways. */
  private async upgrade(scope: ClusterScope, req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    try {
      const url = new URL(req.url ?? '/', 'http://gateway');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'v1' || parts[1] !== 'sandboxes' || !parts[2] || !idPattern.test(parts[2])) throw new KubicleError('NotFound', `no stream route for ${url.pathname}`);
      const target = ['', 'v1', 'sandboxes', hostSandboxId(scope.uid, parts[2]), ...parts.slice(3)].map(encodeURIComponent).join('/') + url.search;
      const upstream = net.connect(this.agents.socket(scope.host));
      upstream.on('error', () => socket.destroy());
      await new Promise<void>((resolve, reject) => {
        upstream.once('connect', resolve);
        upstream.once('error', reject);
      });
      let headText = `${req.method} ${target} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) headText += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      upstream.write(`${headText}\r\n`);
      if (head.length) upstream.write(head);
      socket.pipe(upstream).pipe(socket);
      socket.on('close', () => upstream.destroy());
      upstream.on('close', () => socket.destroy());
    } catch (err) {
      refuseUpgrade(socket, err);
    }
  }

  /** The cluster's sandboxes on its host (those also carrying `labels`, if given): the agent selects, so others cost nothing. */
  private list(scope: ClusterScope, labels: Record<string, string> = {}): Promise<SandboxStatus[]> {
    // The cluster's own label last: a tenant's selector cannot widen the list.
    return this.labelled(scope.host, { ...labels, [clusterLabel]: scope.uid });
  }

  /** The host's sandboxes carrying every one of `labels`, selected by the agent and checked again here. */
  private async labelled(host: string, labels: Record<string, string>): Promise<SandboxStatus[]> {
    const r = await this.call<SandboxStatus[]>(host, 'GET', `/v1/sandboxes?labelSelector=${encodeURIComponent(formatLabelSelector(labels))}`);
    if (r.status >= 300) throw remoteError(r);
    return r.body.filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  }

  /** A new sandbox for the cluster: checked, limited, put on its network, recorded. */
  private async place(scope: ClusterScope, body: { spec?: SandboxSpec; runtime?: string }): Promise<SandboxStatus> {
    const spec = body.spec;
    const runtime = body.runtime ?? 'runc';
    if (!spec || typeof spec.id !== 'string' || !idPattern.test(spec.id)) throw new KubicleError('Invalid', `spec.id must match ${idPattern.source}`);
    if (runtime !== 'runc' && runtime !== 'microvm') throw new KubicleError('Invalid', `unknown runtime ${JSON.stringify(runtime)}`);
    if (spec.network === 'host') throw new KubicleError('Forbidden', 'host networking is not available to tenant clusters');
    const volumes = (spec.volumes ?? []).map((v) => {
      if (v.type !== 'host') return v;
      try {
        return { ...v, path: localVolumeDir(scope, v.path) };
      } catch (err) {
        throw new KubicleError('Forbidden', `volume ${v.name}: ${(err as Error).message}`);
      }
    });
    const r = spec.resources ?? {};
    const resources = {
      cpuMillis: positive(r.cpuMillis) ?? defaultPodLimits.cpuMillis,
      memoryBytes: positive(r.memoryBytes) ?? defaultPodLimits.memoryBytes,
      pids: Math.min(positive(r.pids) ?? defaultPodLimits.pids, 32768),
    };
    await this.checkQuota(scope, resources);
    await this.checkRoom(scope.host, resources);
    const hostId = hostSandboxId(scope.uid, spec.id);
    const labels = {
      ...(spec.labels ?? {}),
      [clusterLabel]: scope.uid,
      [tenantLabel]: scope.tenant,
      [cpuLabel]: String(resources.cpuMillis),
      [memoryLabel]: String(resources.memoryBytes),
      [runtimeLabel]: runtime,
    };
    const placed: SandboxSpec = { ...spec, id: hostId, labels, volumes, network: spec.network === 'none' ? 'none' : 'pod', podNetwork: scope.network, resources };
    const res = await this.call<SandboxStatus>(scope.host, 'POST', '/v1/sandboxes', { spec: placed, runtime });
    if (res.status >= 300) throw remoteError(res);
    await this.record(scope, hostId, spec, runtime, resources).catch((err) => this.log.warn('sandbox not recorded', { sandbox: hostId, err }));
    return res.body;
  }

  /**
   * Refuses a sandbox that would take the tenant's sandboxes, all together on every host, beyond
   * its quota. A host that does not answer fails the placement: its sandboxes cannot be counted.
   */
  private async checkQuota(scope: ClusterScope, want: { cpuMillis: number; memoryBytes: number }): Promise<void> {
    const quota = scope.quota();
    if (quota.cpuMillis === undefined && quota.memoryBytes === undefined) return;
    const mine = (await Promise.all(this.agents.names().map((host) => this.labelled(host, { [tenantLabel]: scope.tenant })))).flat();
    const used = { cpuMillis: 0, memoryBytes: 0 };
    for (const s of mine) {
      used.cpuMillis += Number(s.labels[cpuLabel] ?? 0);
      used.memoryBytes += Number(s.labels[memoryLabel] ?? 0);
    }
    for (const k of ['cpuMillis', 'memoryBytes'] as const) {
      const limit = quota[k];
      if (limit !== undefined && used[k] + want[k] > limit) {
        const show = (n: number) => (k === 'cpuMillis' ? `${n}m` : `${Math.ceil(n / 2 ** 20)}Mi`);
        throw new KubicleError('Forbidden', `exceeded quota: tenant ${scope.tenant}, requested ${k === 'cpuMillis' ? 'cpu' : 'memory'}=${show(want[k])}, used ${show(used[k])}, limited ${show(limit)}`);
      }
    }
  }

  /**
   * Refuses a sandbox its host has no room for, whatever its tenant's quota: what the host's
   * sandboxes may use, with it, would go beyond what the host may allocate. The kubelet tries
   * again, so the pod runs once room is made (as a pod waits for a node).
   */
  private async checkRoom(host: string, want: Amount): Promise<void> {
    const room = await this.agents.room(host);
    if (!room) return;
    for (const k of ['cpuMillis', 'memoryBytes'] as const) {
      if (room.allocated[k] + want[k] <= room.capacity[k]) continue;
      const show = (n: number) => (k === 'cpuMillis' ? `${Math.floor(n)}m` : `${Math.floor(n / 2 ** 20)}Mi`);
      throw new KubicleError('Unavailable', `host ${host} has no room for it: insufficient ${k === 'cpuMillis' ? 'cpu' : 'memory'} (requested ${show(want[k])}, ${show(room.allocated[k])} of ${show(room.capacity[k])} allocated)`);
    }
  }

  /** Refuses what a runc container would reach the shared kernel with; a microvm has its own kernel. */
  private async checkContainer(host: string, hostId: string, spec: ContainerSpec): Promise<void> {
    const sb = await this.call<SandboxStatus>(host, 'GET', `/v1/sandboxes/${encodeURIComponent(hostId)}`);
    if (sb.status >= 300) throw remoteError(sb);
    if (sb.body.labels?.[runtimeLabel] === 'microvm') return;
    if (spec.privileged) throw new KubicleError('Forbidden', `container ${spec.name}: privileged containers are not available to tenant clusters (use the microvm RuntimeClass)`);
    const extra = (spec.capabilities?.add ?? []).map((c) => c.toUpperCase().replace(/^CAP_/, '')).filter((c) => !allowedCaps.has(c));
    if (extra.length) throw new KubicleError('Forbidden', `container ${spec.name}: capabilities ${extra.join(', ')} are not available to tenant clusters (use the microvm RuntimeClass)`);
  }

  /** The provider's Sandbox object for a placed sandbox, owned by its Cluster. */
  private async record(scope: ClusterScope, hostId: string, spec: SandboxSpec, runtime: string, resources: { cpuMillis: number; memoryBytes: number }): Promise<void> {
    await this.client
      .create(resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'sandboxes', namespace: scope.tenant }), {
        apiVersion: `${providerGroup}/v1alpha1`,
        kind: 'Sandbox',
        metadata: {
          name: hostId,
          namespace: scope.tenant,
          labels: { 'kubicle.io/cluster': scope.name },
          ownerReferences: [{ apiVersion: `${providerGroup}/v1alpha1`, kind: 'Cluster', name: scope.name, uid: scope.uid, controller: true }],
        },
        spec: {
          cluster: scope.name,
          role: 'pod',
          host: scope.host,
          runtime,
          workload: { namespace: spec.labels?.['kubicle.io/namespace'], pod: spec.labels?.['kubicle.io/pod'] },
          resources: { cpu: `${resources.cpuMillis}m`, memory: `${Math.ceil(resources.memoryBytes / 2 ** 20)}Mi` },
        },
        status: { phase: 'Running' },
      })
      .catch((err) => {
        if (!isCode(err, 'AlreadyExists')) throw err;
      });
  }

  private async forget(scope: ClusterScope, hostId: string): Promise<void> {
    await this.client.delete(resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'sandboxes', namespace: scope.tenant, name: hostId })).catch((err) => {
      if (!isCode(err, 'NotFound')) this.log.warn('sandbox record not removed', { sandbox: hostId, err });
    });
  }

  /** Removes every sandbox of a cluster from its host (its stop or deletion) and their records. */
  async removeAll(scope: ClusterScope, graceSeconds: number): Promise<void> {
    for (const s of await this.list(scope)) {
      const r = await this.call(scope.host, 'DELETE', `/v1/sandboxes/${encodeURIComponent(s.id)}?grace=${graceSeconds}`);
      if (r.status >= 300 && r.status !== 404) throw remoteError(r);
      await this.forget(scope, s.id);
    }
  }

  /** Whether any of the cluster's pods has a process running (its control plane not counted). */
  async hasRunning(scope: ClusterScope): Promise<boolean> {
    return (await this.list(scope)).some((s) => s.containers.some((c) => c.state === 'running'));
  }

  /** Passes a request through unchanged but for its path; the answer streams back (logs). */
  private async pass(host: string, req: http.IncomingMessage, res: http.ServerResponse, target: string): Promise<void> {
    const socketPath = this.agents.socket(host);
    const upstream = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = {};
      for (const h of ['content-type', 'content-length']) if (req.headers[h]) headers[h] = req.headers[h];
      const out = http.request({ socketPath, path: target, method: req.method, headers }, resolve);
      out.on('error', (err) => reject(new KubicleError('Unavailable', `host agent unreachable: ${err.message}`)));
      req.pipe(out);
    });
    res.writeHead(upstream.statusCode ?? 502, { 'content-type': upstream.headers['content-type'] ?? 'application/json' });
    res.flushHeaders();
    res.on('close', () => upstream.destroy());
    await pipeline(upstream, res).catch(() => {});
  }

  /** One JSON call to a host's agent: its status and parsed body (an error body as it is). */
  private call<T = unknown>(host: string, method: string, target: string, body?: unknown): Promise<{ status: number; body: T }> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const socketPath = this.agents.socket(host);
    return new Promise((resolve, reject) => {
      const out = http.request({ socketPath, path: target, method, headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {} }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          try {
            resolve({ status: res.statusCode ?? 502, body: (text ? JSON.parse(text) : {}) as T });
          } catch {
            reject(new KubicleError('Internal', `host agent answered ${res.statusCode} with no JSON`));
          }
        });
      });
      out.on('error', (err) => reject(new KubicleError('Unavailable', `host agent unreachable: ${err.message}`)));
      out.end(data);
    });
  }
}

/**
 * Where a cluster's local volume `path` is on the host: a directory directly under
 * LOCAL_PATH_ROOT (where the cluster's local-path provisioner puts its volumes) is the cluster's
 * own directory of that name. Any other host path is refused: it would reach the shared host.
 */
export function localVolumeDir(scope: Pick<ClusterScope, 'volumes'>, hostPath: string): string {
  const name = childName(LOCAL_PATH_ROOT, hostPath);
  if (!name) throw new KubicleError('Forbidden', `host path ${JSON.stringify(hostPath)} is not available to tenant clusters: only their local volumes, directly under ${LOCAL_PATH_ROOT}`);
  return path.join(scope.volumes, name);
}

function positive(n: number | undefined): number | undefined {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.floor(n) : undefined;
}

function unprefix(scope: ClusterScope, id: string): string {
  const prefix = hostSandboxId(scope.uid, '');
  return id?.startsWith(prefix) ? id.slice(prefix.length) : id;
}

/** A sandbox as its cluster sees it: its own id, and the labels its kubelet gave it. */
function toTenant(scope: ClusterScope, s: SandboxStatus): SandboxStatus {
  const labels = Object.fromEntries(Object.entries(s.labels ?? {}).filter(([k]) => ![clusterLabel, tenantLabel, cpuLabel, memoryLabel, runtimeLabel].includes(k)));
  return { ...s, id: unprefix(scope, s.id), labels, containers: (s.containers ?? []).map((c) => ({ ...c, id: unprefix(scope, c.id) })) };
}

function remoteError(r: { status: number; body: unknown }): KubicleError {
  const b = r.body as { code?: string; message?: string };
  return new KubicleError((b.code as never) ?? 'Internal', b.message ?? `host agent answered ${r.status}`);
}
