import { existsSync } from 'node:fs';
import { chown, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { type Cidr, formatIPv4, parseCidr, parseIPv4 } from '../api/ipv4.js';
import { providerGroup } from '../api/kinds/provider.js';
import { parseQuantity } from '../api/quantity.js';
import { Informer } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { Phases } from '../observe/phases.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import { BlockPool } from './block-pool.js';
import { type ClusterHosts, ClusterPlacement } from './cluster-placement.js';
import { clusterQuotaRefusal, controlPlaneResources } from './cluster-quota.js';
import {
  apiSocketPath,
  type ControlPlaneImage,
  type ControlPlaneLayout,
  controlPlaneContainer,
  controlPlaneEtcdStore,
  controlPlaneSandbox,
  controlPlaneUid,
  prepareDataDir,
  sandboxSocketName,
  storeSocketName,
} from './control-plane-sandbox.js';
import type { EndpointGateway } from './endpoint-gateway.js';
import { KeyPool } from './key-pool.js';
import { type ClusterScope, cpuLabel, memoryLabel, type SandboxGateway, tenantLabel } from './sandbox-gateway.js';
import { StoreRelay } from './store-relay.js';
import { askTenant, hasPendingCronJobs, servedVersion, virtualNodeReady } from './tenant-api.js';

/**
 * The cluster controller (DESIGN §2.3–2.4): makes each Cluster's control plane exist as asked.
 * A new Cluster gets an endpoint address from the pool, a data directory, and a control-plane
 * sandbox on the host; once it serves, its admin kubeconfig goes into the Secret
 * `<cluster>-kubeconfig` beside it (Cluster API's convention) and the Cluster turns Running.
 * `spec.stopped` halts the sandbox and keeps the data; a control plane without connections for
 * `spec.sleepAfterSeconds` (and no CronJob waiting to fire) is stopped the same way and woken by
 * the gateway on the next connection. Deleting the Cluster removes the sandbox, the endpoint and
 * the data directory before the finalizer goes.
 */
export interface ClusterControllerOptions {
  /** The hosts a cluster may be placed on: its control plane and its pods run on one of them. */
  hosts: ClusterHosts;
  /** The host of clusters admitted before they were placed (the provider's own). */
  home: string;
  /** Clusters' data directories live under here, one per Cluster uid. */
  clustersDir: string;
  endpointPool: Cidr;
  endpointPort: number;
  /** Clusters' pod ranges (a /24 each) come from here; each is its own isolated network on the host. */
  podPool: Cidr;
  /** Serves each running cluster's virtual kubelet the Sandbox API, held to that cluster. */
  sandboxes: SandboxGateway;
  image: ControlPlaneImage;
  /** Sleep after this many idle seconds when a Cluster does not say (0: never). */
  defaultSleepAfterSeconds: number;
  /** How often idleness is checked. */
  idleCheckMs?: number;
  /** The host side of each cluster's Services, run while its control plane runs. */
  datapath?: ClusterDatapath;
  /** The etcd for Clusters of `spec.store: etcd`; without it they fail with a clear message. */
  stores?: ClusterStores;
}

/**
 * The etcd that control planes of `spec.store: etcd` share, each under a prefix of its own behind
 * its own etcd user and role (storage's EtcdTenancy has this shape). `grant` is idempotent and
 * makes a new password each time; `revoke` deletes the cluster's keys, user and role, idempotently.
 */
export interface ClusterStores {
  readonly address: { host: string; port: number };
  grant(id: string): Promise<{ root: string; user: string; password: string }>;
  revoke(id: string): Promise<void>;
}

/**
 * A cluster's share of the host's datapath — its Services on its network's bridge — the part a
 * node's kube-proxy plays upstream. The provider runs it while the control plane runs, reading
 * the cluster's objects through `client` only. `run` serves until the signal aborts, then
 * removes what it programmed; it may reject, and is then started again on the next wake.
 */
export interface ClusterDatapath {
  run(target: { cluster: string; client: KubeClient; network: { bridge: string; cidr: string; gateway: string } }, signal: AbortSignal): Promise<void>;
}

export const clusterFinalizer = 'kubicle.io/cluster';
const readyTimeoutMs = 60_000;
const placementRetryMs = 5000;
// A virtual node without a quota offers its host's capacity, or this machine's until that is known (asked once: os.cpus() reads /proc).
const thisMachine = { cpu: String(os.availableParallelism()), memory: `${Math.floor(os.totalmem() / 2 ** 20)}Mi` };

/** The name of a cluster's pod network (and its bridge), from its uid. */
const networkName = (c: Obj) => `c${c.metadata.uid.replace(/-/g, '').slice(0, 20)}`;

type State = 'running' | 'asleep' | 'stopped' | 'failed';

interface Live {
  state: State;
  /** Operations on one cluster (start, sleep, stop, delete) run one after another. */
  chain: Promise<unknown>;
  startedAt: number;
  socketPath: string;
  /** The generation whose start was refused as Invalid: not tried again until the spec changes. */
  invalidAt?: number;
  /** The running datapath: stopped with the control plane. */
  datapath?: { stop: AbortController; done: Promise<void> };
}

export class ClusterController {
  private readonly queue = new WorkQueue();
  private readonly clusters: Informer;
  private readonly tenants: Informer;
  private readonly live = new Map<string, Live>();
  private readonly endpoints: BlockPool;
  private readonly podRanges: BlockPool;
  /** Two clusters' worth of keys (four each). */
  private readonly keys = new KeyPool(8);
  private readonly relay?: StoreRelay;
  private readonly placement: ClusterPlacement;

  constructor(
    private readonly client: KubeClient,
    private readonly gateway: EndpointGateway,
    private readonly opts: ClusterControllerOptions,
    private readonly log: Logger,
  ) {
    this.clusters = new Informer(client, `/apis/${providerGroup}/v1alpha1/clusters`, log);
    this.tenants = new Informer(client, `/apis/${providerGroup}/v1alpha1/tenants`, log);
    // The pool's network address and first host (the provider's own) are never handed out.
    this.endpoints = new BlockPool(opts.endpointPool, 32, 2, 1);
    this.podRanges = new BlockPool(opts.podPool, 24);
    if (opts.stores) this.relay = new StoreRelay(opts.stores.address, log);
    this.placement = new ClusterPlacement(opts.hosts, () => this.clusters.list());
    const enqueue = (c: Obj) => this.queue.add(`${c.metadata.namespace}/${c.metadata.name}`);
    this.clusters.on({ add: enqueue, update: (_, c) => enqueue(c), delete: enqueue });
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = [this.clusters.run(signal), this.tenants.run(signal)];
    await Promise.race([Promise.all([this.clusters.synced, this.tenants.synced]), Promise.all(informers)]);
    for (const c of this.clusters.list()) {
      const ip = endpointAddress(c);
      if (ip) this.endpoints.take(ip);
      if (podRange(c)) this.podRanges.take(podRange(c) as string);
    }
    void this.keys.fill();
    const idle = this.idleLoop(signal);
    await Promise.all([...informers, idle, this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('cluster sync failed', { cluster: key, err }))]);
    await this.gateway.closeAll();
    await this.relay?.closeAll();
  }

  private async sync(key: string): Promise<void> {
    const c = this.clusters.get(key);
    if (!c) return;
    if (c.metadata.deletionTimestamp) return this.remove(key, c);
    if (!(c.metadata.finalizers ?? []).includes(clusterFinalizer)) {
      await this.client.patch(this.path(c), { metadata: { finalizers: [...(c.metadata.finalizers ?? []), clusterFinalizer], resourceVersion: c.metadata.resourceVersion } });
      return; // the update brings it back
    }
    if (!endpointAddress(c)) {
      const refusal = this.quotaRefusal(c);
      if (refusal) return this.setStatus(c, { phase: 'Failed', message: refusal });
      const placed = await this.placement.place(c);
      if ('refusal' in placed) {
        // As a pod stays Pending until a node has room: said why, and tried again.
        await this.setStatus(c, { phase: 'Pending', message: `no host can run its control plane: ${placed.refusal}` });
        return this.queue.addAfter(key, placementRetryMs);
      }
      const address = this.endpoints.allocate();
      let pods: string | undefined;
      try {
        pods = this.podRanges.allocate();
        await this.setStatus(c, { phase: 'Pending', message: '', endpoint: `https://${address}:${this.opts.endpointPort}`, podCIDR: pods, host: placed.host });
      } catch (err) {
        this.endpoints.release(address);
        if (pods) this.podRanges.release(pods);
        this.placement.forget(c);
        throw err;
      }
      return;
    }
    const address = endpointAddress(c) as string;
    this.endpoints.take(address);
    // A Cluster admitted before clusters were placed runs where they all ran then.
    if (!c.status?.host) return this.setStatus(c, { host: this.opts.home });
    // A Cluster made before clusters had their own pod networks gets one now.
    if (!podRange(c)) {
      const pods = this.podRanges.allocate();
      await this.setStatus(c, { podCIDR: pods }).catch((err) => {
        this.podRanges.release(pods);
        throw err;
      });
      return;
    }
    const live = this.liveOf(key, c);
    if (c.spec.stopped) {
      await this.gateway.close(key);
      await this.serially(live, async () => {
        if (live.state === 'running' || live.state === 'asleep') await this.halt(key, c, 'Stopped');
        live.state = 'stopped';
      });
      if (c.status?.phase !== 'Stopped') await this.setStatus(c, { phase: 'Stopped', message: 'stopped by request; its state is kept' });
      return;
    }
    await this.gateway.open(key, address, this.opts.endpointPort, { resolve: () => this.wake(key) });
    // A failed start is tried again; a cluster that slept stays asleep until a connection comes.
    if (live.state === 'failed') {
      // A start refused as Invalid (the provider cannot give what the spec asks) fails the same way
      // until the spec changes; retrying it at every status update would spin.
      if (live.invalidAt === c.metadata.generation) return;
      live.state = 'stopped';
    }
    if (live.state === 'stopped') await this.wake(key);
    else if (live.state === 'running' && c.status?.phase !== 'Running') await this.publish(c, live);
  }

  /** Starts the control plane unless it runs; resolves with its socket once it serves. */
  private wake(key: string): Promise<string> {
    const c = this.clusters.get(key);
    if (!c || c.metadata.deletionTimestamp) return Promise.reject(new KubicleError('NotFound', `cluster ${key} is gone`));
    if (c.spec.stopped) return Promise.reject(new KubicleError('Unavailable', `cluster ${key} is stopped`));
    const live = this.liveOf(key, c);
    if (live.state === 'running') return Promise.resolve(live.socketPath);
    return this.serially(live, async () => {
      if (live.state === 'running') return live.socketPath;
      const woke = live.state === 'asleep';
      const started = Date.now();
      const phases = new Phases();
      try {
        await this.setStatus(c, { phase: 'Starting', message: woke ? 'waking on a connection' : '' }).catch(() => {});
        phases.mark('status');
        await this.start(c, live, phases);
      } catch (err) {
        live.state = 'failed';
        live.invalidAt = isCode(err, 'Invalid') ? c.metadata.generation : undefined;
        await this.setStatus(c, { phase: 'Failed', message: (err as Error).message }).catch(() => {});
        throw err;
      }
      live.state = 'running';
      live.startedAt = Date.now();
      this.log.info(woke ? 'cluster woke' : 'cluster started', { cluster: key, ms: live.startedAt - started, phases: phases.ms });
      // Serve the waiting connection first; the status follows (and a failure there is retried by sync).
      void this.publish(c, live).catch((err) => {
        this.log.warn('cluster status not published', { cluster: key, err });
        this.queue.addRateLimited(key);
      });
      return live.socketPath;
    });
  }

  private async start(c: Obj, live: Live, phases: Phases): Promise<void> {
    const layout = this.layout(c);
    const agent = this.agentOf(c);
    // The cluster's network and its virtual kubelet's Sandbox API come first: an adopted control plane uses them at once.
    const network = await agent.defineNetwork(layout.network.name, { cidr: layout.network.cidr });
    await this.opts.sandboxes.open(this.scope(c), path.join(layout.runDir, sandboxSocketName));
    // An etcd cluster's relay too: an adopted control plane keeps its connection to its store.
    if (c.spec.store === 'etcd') {
      if (!this.relay) throw new KubicleError('Invalid', 'this provider has no etcd for control planes: start it with --cluster-etcd');
      await this.relay.open(c.metadata.uid, path.join(layout.runDir, storeSocketName));
    }
    phases.mark('network');
    const existing = await agent.getSandbox(layout.sandboxId).catch(() => undefined);
    // A control plane still serving from before the provider restarted is adopted, not restarted.
    if (existing?.containers.some((x) => x.name === 'control-plane' && x.state === 'running') && (await canConnect(live.socketPath))) return this.runDatapath(c, live, network.bridge);
    const dataDir = this.dataDir(c);
    await prepareDataDir(dataDir, () => this.keys.take());
    const store = await this.storeOf(c, layout);
    // Both reappear when the control plane serves: the kubeconfig is written once it is ready.
    await rm(live.socketPath, { force: true });
    await rm(path.join(dataDir, 'kubeconfig'), { force: true });
    phases.mark('data');
    // One that runs but does not serve is hung: replace its process.
    if (existing?.containers.some((x) => x.state === 'running')) await agent.stopContainer(layout.sandboxId, 'control-plane', 0);
    // A sleeping cluster kept its sandbox (namespace, cgroup, mounts): waking starts only the process.
    if (!existing) {
      await agent.pullImage(this.opts.image.image);
      // Labelled with its tenant and size: control planes count against the tenant's quota as its pods do.
      const labels = {
        'kubicle.io/cluster': `${c.metadata.namespace}.${c.metadata.name}`,
        'kubicle.io/role': 'control-plane',
        [tenantLabel]: c.metadata.namespace,
        [cpuLabel]: String(layout.resources.cpuMillis),
        [memoryLabel]: String(layout.resources.memoryBytes),
      };
      await agent.createSandbox(controlPlaneSandbox(layout, this.opts.image, c.metadata.name, labels));
      phases.mark('sandbox');
    }
    const status = await agent.startContainer(layout.sandboxId, controlPlaneContainer(layout, this.opts.image, store));
    if (status.state === 'exited') throw new KubicleError('Unavailable', `control plane did not start: ${status.message ?? status.reason ?? `exit ${status.exitCode}`}`);
    phases.mark('container');
    await this.waitServing(agent, layout.sandboxId, live.socketPath);
    phases.mark('serving');
    this.runDatapath(c, live, network.bridge);
  }

  private runDatapath(c: Obj, live: Live, bridge: string): void {
    const datapath = this.opts.datapath;
    if (!datapath || live.datapath) return;
    const cidr = podRange(c) as string;
    const stop = new AbortController();
    const cluster = `${c.metadata.namespace}/${c.metadata.name}`;
    const done = this.askTenant(c, live, (client) => datapath.run({ cluster, client, network: { bridge, cidr, gateway: formatIPv4((parseCidr(cidr) as Cidr).base + 1) } }, stop.signal))
      .catch((err) => this.log.warn('cluster datapath stopped', { cluster, err }))
      .finally(() => {
        if (live.datapath?.stop === stop) live.datapath = undefined;
      });
    live.datapath = { stop, done };
  }

  private async stopDatapath(live: Live): Promise<void> {
    const d = live.datapath;
    if (!d) return;
    d.stop.abort();
    // The datapath must never hold up a sleep, stop or delete: its table is replaced at the next start anyway.
    await Promise.race([d.done, delay(10_000)]);
  }

  /**
   * The control plane's --store for `spec.store: etcd` (undefined for SQLite, a file in its data
   * volume): the cluster's own etcd user, whose new password goes into its data volume only. It
   * reaches etcd through its relay socket, opened by start.
   */
  private async storeOf(c: Obj, layout: ControlPlaneLayout): Promise<string | undefined> {
    if (c.spec.store !== 'etcd' || !this.opts.stores) return undefined;
    const grant = await this.opts.stores.grant(c.metadata.uid);
    const file = path.join(layout.dataDir, 'pki', 'etcd.password');
    await writeFile(file, grant.password, { mode: 0o600 });
    await chown(file, controlPlaneUid, controlPlaneUid);
    return controlPlaneEtcdStore(grant);
  }

  /** Waits until the control plane accepts connections on its socket (it listens only once ready). */
  private async waitServing(agent: SandboxClient, sandboxId: string, socketPath: string): Promise<void> {
    const deadline = Date.now() + readyTimeoutMs;
    for (let i = 0; ; i++) {
      if (existsSync(path.join(path.dirname(socketPath), 'kubeconfig')) && (await canConnect(socketPath))) return;
      if (Date.now() > deadline) throw new KubicleError('Timeout', `control plane did not serve within ${readyTimeoutMs / 1000} s`);
      // Every half second, see whether it died rather than waiting out the deadline.
      if (i % 25 === 24) {
        const sb = await agent.getSandbox(sandboxId);
        const cp = sb.containers.find((x) => x.name === 'control-plane');
        if (cp?.state === 'exited') throw new KubicleError('Unavailable', `control plane exited with ${cp.exitCode} before serving${cp.message ? `: ${cp.message}` : ''}`);
      }
      await delay(20);
    }
  }

  /** After a start: the kubeconfig Secret (once), the version served, and phase Running. */
  private async publish(c: Obj, live: Live): Promise<void> {
    const kubeconfig = await readFile(path.join(this.dataDir(c), 'kubeconfig'), 'utf8');
    const secretPath = resourcePath({ version: 'v1', plural: 'secrets', namespace: c.metadata.namespace });
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: `${c.metadata.name}-kubeconfig`,
        namespace: c.metadata.namespace,
        labels: { 'kubicle.io/cluster': c.metadata.name },
        ownerReferences: [{ apiVersion: `${providerGroup}/v1alpha1`, kind: 'Cluster', name: c.metadata.name, uid: c.metadata.uid, controller: true, blockOwnerDeletion: true }],
      },
      type: 'kubicle.io/kubeconfig',
      data: { value: Buffer.from(kubeconfig).toString('base64') },
    };
    try {
      await this.client.create(secretPath, secret);
    } catch (err) {
      if (!isCode(err, 'AlreadyExists')) throw err;
    }
    const version = await this.askTenant(c, live, async (admin) => {
      const served = await servedVersion(admin);
      await virtualNodeReady(admin, readyTimeoutMs);
      return served;
    });
    await this.setStatus(c, { phase: 'Running', message: '', version, kubeconfigSecret: secret.metadata.name });
  }

  /**
   * Stops the control plane; its data directory (store, CA) stays. Asleep, the sandbox stays too
   * (no process, so no CPU or memory use) for a quick wake; stopped, it goes.
   */
  private async halt(key: string, c: Obj, phase: 'Stopped' | 'Sleeping'): Promise<void> {
    this.gateway.disconnect(key);
    await this.stopDatapath(this.liveOf(key, c));
    const id = this.layout(c).sandboxId;
    if (phase === 'Sleeping') await this.agentOf(c).stopContainer(id, 'control-plane', 5);
    else {
      // Stopped: the cluster's pods halt too (their objects stay in its store; start runs them
      // again) — after its kubelet, which would otherwise make them anew.
      await this.opts.sandboxes.close(c.metadata.uid);
      await this.agentOf(c).removeSandbox(id, 5);
      await this.opts.sandboxes.removeAll(this.scope(c), 5);
      await this.relay?.close(c.metadata.uid);
    }
    this.log.info(phase === 'Sleeping' ? 'cluster asleep' : 'cluster stopped', { cluster: key });
  }

  private async remove(key: string, c: Obj): Promise<void> {
    const live = this.liveOf(key, c);
    await this.gateway.close(key);
    await this.serially(live, async () => {
      const layout = this.layout(c);
      await this.stopDatapath(live);
      // The kubelet first, so that it makes no pod anew; then its pods.
      await this.opts.sandboxes.close(c.metadata.uid);
      // Never placed (no host could take it): nothing of it runs anywhere.
      const agent = this.placement.placed(c) ? this.agentOf(c) : undefined;
      await agent?.removeSandbox(layout.sandboxId, 5).catch((err) => {
        if (!isCode(err, 'NotFound')) throw err;
      });
      if (agent) await this.opts.sandboxes.removeAll(this.scope(c), 5);
      await this.relay?.close(c.metadata.uid);
      if (c.spec.store === 'etcd' && this.opts.stores) await this.opts.stores.revoke(c.metadata.uid);
      if (agent && podRange(c)) await agent.removeNetwork(layout.network.name);
      await rm(this.dataDir(c), { recursive: true, force: true });
      await rm(layout.runDir, { recursive: true, force: true });
      await rm(this.volumesDir(c), { recursive: true, force: true });
      live.state = 'stopped';
    });
    this.live.delete(key);
    this.placement.forget(c);
    const address = endpointAddress(c);
    if (address) this.endpoints.release(address);
    if (podRange(c)) this.podRanges.release(podRange(c) as string);
    if ((c.metadata.finalizers ?? []).includes(clusterFinalizer)) {
      await this.client.patch(this.path(c), { metadata: { finalizers: c.metadata.finalizers.filter((f: string) => f !== clusterFinalizer), resourceVersion: c.metadata.resourceVersion } });
    }
    this.log.info('cluster deleted', { cluster: key });
  }

  /** Puts idle control planes to sleep: no connection for their sleepAfterSeconds, and no CronJob to fire. */
  private async idleLoop(signal: AbortSignal): Promise<void> {
    const every = this.opts.idleCheckMs ?? 1000;
    while (!signal.aborted) {
      await delay(every, undefined, { signal }).catch(() => {});
      for (const [key, live] of this.live) {
        const c = this.clusters.get(key);
        if (!c || live.state !== 'running' || c.spec.stopped) continue;
        const after = (c.spec.sleepAfterSeconds ?? this.opts.defaultSleepAfterSeconds) * 1000;
        const act = this.gateway.activity(key);
        if (!after || !act || act.open > 0) continue;
        const now = Date.now();
        if (now - Math.max(act.idleSince, live.startedAt) < after) continue;
        void this.sleep(key, c, live).catch((err) => this.log.warn('cluster could not sleep', { cluster: key, err }));
      }
    }
  }

  private async sleep(key: string, c: Obj, live: Live): Promise<void> {
    // Pods need their kubelet (restarts, probes): a cluster that runs any stays awake.
    if ((await this.opts.sandboxes.hasRunning(this.scope(c))) || (await this.askTenant(c, live, hasPendingCronJobs))) {
      live.startedAt = Date.now(); // look again after another idle period
      return;
    }
    let slept = false;
    await this.serially(live, async () => {
      const act = this.gateway.activity(key);
      if (live.state !== 'running' || (act && act.open > 0)) return;
      live.state = 'asleep';
      try {
        await this.halt(key, c, 'Sleeping');
      } catch (err) {
        // Half-halted (its control plane may still run): not asleep. Sync brings it back to a
        // known state (a serving control plane is adopted, its datapath restarted), and the
        // idle loop tries again later.
        live.state = 'stopped';
        this.queue.addRateLimited(key);
        throw err;
      }
      slept = true;
    });
    // Only the call that halted it says so: another one, fired meanwhile by the idle loop, may
    // find the state changed under it.
    if (slept) await this.setStatus(c, { phase: 'Sleeping', message: 'idle; the next connection wakes it' }).catch(() => {});
  }

  /** The cluster's own API server asked as its admin (provider/tenant-api.ts). */
  private askTenant<T>(c: Obj, live: Live, ask: (admin: KubeClient) => Promise<T>): Promise<T> {
    // Credentials read fresh each time: a few small files, and none held in memory between uses.
    return askTenant(path.join(this.dataDir(c), 'pki'), c.status.endpoint, live.socketPath, ask);
  }

  /** Why the tenant's quota leaves no room for this Cluster beside those it already has, if it does not. */
  private quotaRefusal(c: Obj): string | undefined {
    const ns = c.metadata.namespace;
    const admitted = this.clusters.listNamespace(ns).filter((x) => x.metadata.uid !== c.metadata.uid && endpointAddress(x));
    return clusterQuotaRefusal(ns, this.tenants.get(ns)?.spec?.quota ?? {}, admitted, c);
  }

  private layout(c: Obj): ControlPlaneLayout {
    const quota = this.tenants.get(c.metadata.namespace)?.spec?.quota ?? {};
    const host = this.opts.hosts.capacity(this.hostOf(c)) ?? thisMachine;
    return {
      sandboxId: `cp-${c.metadata.uid}`,
      dataDir: this.dataDir(c),
      endpoint: { address: endpointAddress(c) as string, port: this.opts.endpointPort },
      resources: controlPlaneResources(c),
      network: { name: networkName(c), cidr: podRange(c) ?? '' },
      runDir: `${this.dataDir(c)}.run`,
      node: { cpu: String(quota.cpu ?? host.cpu), memory: String(quota.memory ?? host.memory) },
    };
  }

  /** What the cluster's virtual kubelet may do through the provider's Sandbox API. */
  private scope(c: Obj): ClusterScope {
    const tenant = c.metadata.namespace;
    return {
      uid: c.metadata.uid,
      tenant,
      name: c.metadata.name,
      network: networkName(c),
      host: this.hostOf(c),
      volumes: this.volumesDir(c),
      quota: () => {
        const q = this.tenants.get(tenant)?.spec?.quota ?? {};
        return {
          cpuMillis: q.cpu !== undefined ? Math.round(parseQuantity(String(q.cpu)) * 1000) : undefined,
          memoryBytes: q.memory !== undefined ? Math.round(parseQuantity(String(q.memory))) : undefined,
        };
      },
    };
  }

  private hostOf(c: Obj): string {
    return this.placement.hostOf(c) ?? this.opts.home;
  }

  private agentOf(c: Obj): SandboxClient {
    return this.opts.hosts.agent(this.hostOf(c));
  }

  private dataDir(c: Obj): string {
    return path.join(this.opts.clustersDir, c.metadata.uid);
  }

  /** The cluster's local volumes: beside its data directory, not in it, so its control plane's sandbox does not see its pods' data. */
  private volumesDir(c: Obj): string {
    return `${this.dataDir(c)}.volumes`;
  }

  private liveOf(key: string, c: Obj): Live {
    let live = this.live.get(key);
    if (!live) {
      const phase = c.status?.phase;
      live = { state: phase === 'Sleeping' ? 'asleep' : 'stopped', chain: Promise.resolve(), startedAt: 0, socketPath: apiSocketPath(this.dataDir(c)) };
      this.live.set(key, live);
    }
    return live;
  }

  private serially<T>(live: Live, op: () => Promise<T>): Promise<T> {
    const next = live.chain.then(op, op);
    live.chain = next.catch(() => {});
    return next;
  }

  private path(c: Obj, subresource?: string): string {
    return resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'clusters', namespace: c.metadata.namespace, name: c.metadata.name, subresource });
  }

  private async setStatus(c: Obj, status: Obj): Promise<void> {
    const fresh = this.clusters.get(`${c.metadata.namespace}/${c.metadata.name}`) ?? c;
    const next: Obj = { ...(fresh.status ?? {}), ...status };
    const ready = next.phase === 'Running' ? 'True' : 'False';
    const old = ((fresh.status?.conditions ?? []) as Obj[]).find((x) => x.type === 'Ready');
    next.conditions = [{ type: 'Ready', status: ready, reason: next.phase, message: next.message || '', lastTransitionTime: old?.status === ready ? old.lastTransitionTime : new Date().toISOString() }];
    // Merge patch: an emptied field is sent as null so it goes.
    for (const [k, v] of Object.entries(next)) if (v === '' || v === undefined) next[k] = null;
    await this.client.patch(this.path(c, 'status'), { status: next });
  }
}

function podRange(c: Obj): string | undefined {
  return parseCidr(c.status?.podCIDR)?.text;
}

function endpointAddress(c: Obj): string | undefined {
  const m = /^https:\/\/([\d.]+):\d+$/.exec(c.status?.endpoint ?? '');
  return m && parseIPv4(m[1]) !== undefined ? m[1] : undefined;
}

function canConnect(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
