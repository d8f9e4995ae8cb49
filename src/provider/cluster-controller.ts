import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Cidr } from '../api/ipv4.js';
import { providerGroup } from '../api/kinds/provider.js';
import { Informer } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { Phases } from '../observe/phases.js';
import type { SandboxStatus } from '../sandbox/api/types.js';
import { BlockPool } from './block-pool.js';
import { type ClusterDatapath, ClusterDatapaths } from './cluster-datapath.js';
import { ClusterLayout, endpointAddress, kubeconfigSecret, networkName, podRange, replicaCount } from './cluster-layout.js';
import { type ClusterHosts, ClusterPlacement } from './cluster-placement.js';
import { clusterQuotaRefusal } from './cluster-quota.js';
import { type ClusterStores, ControlPlaneStores } from './cluster-stores.js';
import { ControlPlaneReplicas, runsControlPlane } from './control-plane-replicas.js';
import {
  apiSocketPath,
  type ControlPlaneImage,
  prepareDataDir,
  prepareReplicaDataDir,
  sandboxSocketName,
} from './control-plane-sandbox.js';
import type { EndpointGateway } from './endpoint-gateway.js';
import { KeyPool } from './key-pool.js';
import { ReplicaHealth } from './replica-health.js';
import type { SandboxGateway } from './sandbox-gateway.js';
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
  /** How long a host may stay NotReady before its control-plane replicas (but a cluster's first) start on other hosts; 60 s if unsaid. */
  hostLostAfterMs?: number;
  /** The host side of each cluster's Services, run while its control plane runs. */
  datapath?: ClusterDatapath;
  /** The etcd for Clusters of `spec.store: etcd`; without it they fail with a clear message. */
  stores?: ClusterStores;
}

export const clusterFinalizer = 'kubicle.io/cluster';
const readyTimeoutMs = 60_000;
const placementRetryMs = 5000;
/** How often running clusters' replicas are looked at, at least; one that has ended is started again. */
const replicaCheckMs = 2000;

type State = 'running' | 'asleep' | 'stopped' | 'failed';

interface Live {
  state: State;
  /** Operations on one cluster (start, sleep, stop, delete) run one after another. */
  chain: Promise<unknown>;
  startedAt: number;
  /** Each replica's API socket, in replica order: the first's (beside the cluster's pods) first. */
  sockets: string[];
  /** Replicas being started again after they ended. */
  restarting: Set<number>;
  /** Replicas whose restart failed: how often in a row, and when the next may be tried. */
  backoff: Map<number, { failures: number; at: number }>;
  /** The generation whose start was refused as Invalid: not tried again until the spec changes. */
  invalidAt?: number;
  /** The cluster's CA, which its replicas' health probes check them against; read at the first. */
  caPem?: string;
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
  private readonly stores: ControlPlaneStores;
  private readonly placement: ClusterPlacement;
  private readonly replicas: ControlPlaneReplicas;
  private readonly health = new ReplicaHealth();
  private readonly datapaths: ClusterDatapaths;
  private readonly layout: ClusterLayout;

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
    this.stores = new ControlPlaneStores(opts.stores, log);
    this.placement = new ClusterPlacement(opts.hosts, () => this.clusters.list());
    this.layout = new ClusterLayout(opts, (ns) => this.tenants.get(ns), this.placement);
    this.replicas = new ControlPlaneReplicas(opts.image);
    this.datapaths = new ClusterDatapaths(opts.datapath, this.log);
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
    const replicas = this.replicaLoop(signal);
    await Promise.all([...informers, idle, replicas, this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('cluster sync failed', { cluster: key, err }))]);
    await this.gateway.closeAll();
    await this.stores.closeAll();
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
        await this.setStatus(c, { phase: 'Pending', message: '', endpoint: `https://${address}:${this.opts.endpointPort}`, podCIDR: pods, host: placed.hosts[0], replicaHosts: placed.hosts });
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
      if (c.status?.phase !== 'Stopped') await this.setStatus(c, { phase: 'Stopped', message: 'stopped by request; its state is kept', readyReplicas: 0 });
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

  /** Starts the control plane unless it runs; resolves with its replicas' sockets, first first, once it serves. */
  private wake(key: string): Promise<string[]> {
    const c = this.clusters.get(key);
    if (!c || c.metadata.deletionTimestamp) return Promise.reject(new KubicleError('NotFound', `cluster ${key} is gone`));
    if (c.spec.stopped) return Promise.reject(new KubicleError('Unavailable', `cluster ${key} is stopped`));
    const live = this.liveOf(key, c);
    if (live.state === 'running') return Promise.resolve(this.health.order(live.sockets));
    return this.serially(live, async () => {
      if (live.state === 'running') return live.sockets;
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
      // Serve the waiting connection first; the status follows (and a failure there is retried by
      // sync), and the further replicas start after this one.
      void this.publish(c, live).catch((err) => {
        this.log.warn('cluster status not published', { cluster: key, err });
        this.queue.addRateLimited(key);
      });
      for (let i = 1; i < live.sockets.length; i++) this.restart(key, c, live, i);
      return this.health.order(live.sockets);
    });
  }

  /**
   * Starts the first replica, beside the cluster's pods: its network and its virtual kubelet's
   * Sandbox API come first (an adopted control plane uses them at once), then its sandbox.
   */
  private async start(c: Obj, live: Live, phases: Phases, replace = false): Promise<void> {
    const first = this.layout.replica(c, 0);
    const network = first.layout.network as { name: string; cidr: string };
    const { bridge } = await first.agent.defineNetwork(network.name, { cidr: network.cidr });
    await this.opts.sandboxes.open(this.layout.scope(c), path.join(first.layout.runDir, sandboxSocketName));
    // An etcd cluster's relay too: an adopted control plane keeps its connection to its store.
    await this.stores.open(c, first.layout.runDir);
    phases.mark('network');
    // The store password is made anew when no replica runs, so only the latest start's holders get
    // in; one restarted beside running replicas keeps theirs.
    const alone = !(await this.anyRunning(c, 1));
    await this.replicas.start(
      first,
      async () => {
        await prepareDataDir(first.layout.dataDir, () => this.keys.take());
        return this.stores.flag(c, this.layout.dataDir(c), alone);
      },
      phases,
      replace,
    );
    this.datapaths.run(`${c.metadata.namespace}/${c.metadata.name}`, bridge, podRange(c) as string, (use) => this.askTenant(c, live, use));
  }

  /**
   * Starts replica `i` again (or for the first time, after the first) in the cluster's chain,
   * unless it is being started already; a failure is logged and left to the next replica check.
   * With `replace`, a process still running (hung) is replaced rather than adopted.
   */
  private restart(key: string, c: Obj, live: Live, i: number, replace = false): void {
    if (live.restarting.has(i)) return;
    live.restarting.add(i);
    void this.serially(live, async () => {
      if (live.state !== 'running') return;
      this.health.forget([live.sockets[i]]);
      if (i === 0) return this.start(c, live, new Phases(), replace);
      const r = this.layout.replica(c, i);
      await this.replicas.start(
        r,
        async () => {
          await prepareReplicaDataDir(r.layout.dataDir, this.layout.dataDir(c));
          return this.stores.flag(c, this.layout.dataDir(c), false);
        },
        undefined,
        replace,
      );
      this.log.info('control-plane replica started', { cluster: key, replica: i, host: this.placement.replicaHosts(c)?.[i] });
    })
      .then(
        () => live.backoff.delete(i),
        (err) => this.backOff(key, live, i, err),
      )
      .finally(() => live.restarting.delete(i));
  }

  /** Replica `i` failed to start (or to find a host): tried again as a crashing container is, 10 s later, doubling, at most 5 minutes apart. */
  private backOff(key: string, live: Live, i: number, err: unknown): void {
    const failures = (live.backoff.get(i)?.failures ?? 0) + 1;
    live.backoff.set(i, { failures, at: Date.now() + Math.min(10_000 * 2 ** (failures - 1), 300_000) });
    this.log.warn('control-plane replica did not start', { cluster: key, replica: i, failures, err });
  }

  /** Whether any replica from `from` on has its process running, as its host agent says. */
  private async anyRunning(c: Obj, from: number): Promise<boolean> {
    for (let i = from; i < replicaCount(c); i++) {
      const r = this.layout.replica(c, i);
      // A host that does not answer soon counts as running nothing: its replica cannot be reached either.
      const sb = await r.agent.getSandbox(r.layout.sandboxId, AbortSignal.timeout(3000)).catch(() => undefined);
      if (runsControlPlane(sb)) return true;
    }
    return false;
  }

  /** After a start: the kubeconfig Secret (once), the version served, and phase Running. */
  private async publish(c: Obj, live: Live): Promise<void> {
    const kubeconfig = await readFile(path.join(this.layout.dataDir(c), 'kubeconfig'), 'utf8');
    const secretPath = resourcePath({ version: 'v1', plural: 'secrets', namespace: c.metadata.namespace });
    const secret = kubeconfigSecret(c, kubeconfig);
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
    // The first replica serves (the others follow, counted by the replica loop): one status write, not two.
    const readyReplicas = Math.max(1, this.clusters.get(`${c.metadata.namespace}/${c.metadata.name}`)?.status?.readyReplicas ?? 0);
    await this.setStatus(c, { phase: 'Running', message: '', version, kubeconfigSecret: secret.metadata.name, readyReplicas });
  }

  /**
   * Stops the control plane; its data directory (store, CA) stays. Asleep, the sandbox stays too
   * (no process, so no CPU or memory use) for a quick wake; stopped, it goes.
   */
  private async halt(key: string, c: Obj, phase: 'Stopped' | 'Sleeping'): Promise<void> {
    this.gateway.disconnect(key);
    const live = this.liveOf(key, c);
    this.health.forget(live.sockets);
    await this.datapaths.stop(key);
    const replicas = this.layout.replicas(c);
    if (phase === 'Sleeping') await Promise.all(replicas.map((r) => this.replicas.sleep(r)));
    else {
      // Stopped: the cluster's pods halt too (their objects stay in its store; start runs them
      // again) — after its kubelet, which would otherwise make them anew.
      await this.opts.sandboxes.close(c.metadata.uid);
      await Promise.all(replicas.map((r) => this.replicas.remove(r)));
      await this.opts.sandboxes.removeAll(this.layout.scope(c), 5);
      await this.stores.close(c);
    }
    this.log.info(phase === 'Sleeping' ? 'cluster asleep' : 'cluster stopped', { cluster: key });
  }

  private async remove(key: string, c: Obj): Promise<void> {
    const live = this.liveOf(key, c);
    await this.gateway.close(key);
    await this.serially(live, async () => {
      this.health.forget(live.sockets);
      await this.datapaths.stop(key);
      // The kubelet first, so that it makes no pod anew; then its pods.
      await this.opts.sandboxes.close(c.metadata.uid);
      // Never placed (no host could take it): nothing of it runs anywhere.
      const replicas = this.placement.placed(c) ? this.layout.replicas(c) : [];
      await Promise.all(replicas.map((r) => this.replicas.remove(r)));
      if (replicas.length) await this.opts.sandboxes.removeAll(this.layout.scope(c), 5);
      await this.stores.close(c);
      await this.stores.revoke(c);
      if (replicas.length && podRange(c)) await replicas[0].agent.removeNetwork(networkName(c));
      for (const r of replicas.slice(1)) await rm(r.layout.dataDir, { recursive: true, force: true });
      await rm(this.layout.dataDir(c), { recursive: true, force: true });
      await rm(this.layout.runDir(c), { recursive: true, force: true });
      await rm(this.layout.volumesDir(c), { recursive: true, force: true });
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

  /**
   * Keeps running clusters' replicas running and serving: each Ready host is asked which control
   * planes run there and each replica's /readyz is probed (provider/replica-health.ts). A replica
   * whose process has ended (a crash, an out-of-memory kill) or that has stopped answering (hung)
   * is started again on its host; status.readyReplicas counts those that run and are ready, and
   * connections go to ready ones first. A replica on a host that does not answer is not counted;
   * once that host has been NotReady for hostLostAfterMs, a replica but the first is started on
   * another host. Control planes found where none belongs are removed.
   */
  private async replicaLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await delay(Math.max(this.opts.idleCheckMs ?? 1000, replicaCheckMs), undefined, { signal }).catch(() => {});
      if (signal.aborted) return;
      const running = [...this.live].map(([key, live]) => ({ key, live, c: this.clusters.get(key) })).filter((x): x is { key: string; live: Live; c: Obj } => !!x.c && x.live.state === 'running' && !x.c.spec.stopped && !x.c.metadata.deletionTimestamp);
      const seen = new Map<string, Map<string, SandboxStatus>>();
      await Promise.all([
        ...this.opts.hosts
          .names()
          .filter((host) => this.opts.hosts.ready(host))
          .map(async (host) => {
            const list = await this.opts.hosts
              .agent(host)
              .listSandboxes({ 'kubicle.io/role': 'control-plane' }, AbortSignal.timeout(3000))
              .catch(() => undefined);
            if (list) seen.set(host, new Map(list.map((sb) => [sb.id, sb])));
          }),
        ...running.map((x) => this.probe(x.c, x.live)),
      ]);
      for (const [host, sandboxes] of seen) await this.removeStrays(host, [...sandboxes.keys()]);
      for (const { key, live, c } of running) await this.keepReplicas(key, c, live, seen);
    }
  }

  /** One pass of the replica loop over a running cluster, given what each Ready host runs. */
  private async keepReplicas(key: string, c: Obj, live: Live, seen: Map<string, Map<string, SandboxStatus>>): Promise<void> {
    const on = this.placement.replicaHosts(c) ?? [];
    let ready = 0;
    for (let i = 0; i < replicaCount(c); i++) {
      if (live.restarting.has(i)) continue;
      const due = Date.now() >= (live.backoff.get(i)?.at ?? 0);
      const states = seen.get(on[i] ?? '');
      if (!states) {
        // The first replica stays with the cluster's pods and network, on their host.
        const lostAt = this.opts.hosts.notReadySince(on[i] ?? '');
        if (i > 0 && due && lostAt !== undefined && Date.now() - lostAt >= (this.opts.hostLostAfterMs ?? 60_000)) this.move(key, c, live, i);
        continue;
      }
      const runs = runsControlPlane(states.get(this.layout.sandboxId(c, i)));
      const hung = this.health.hung(live.sockets[i]);
      if (runs && !hung) {
        if (this.health.ready(live.sockets[i])) ready++;
      } else if (due) {
        if (hung) this.log.warn('control-plane replica does not answer; replacing it', { cluster: key, replica: i });
        this.restart(key, c, live, i, hung);
      }
    }
    if (ready !== c.status?.readyReplicas) await this.setStatus(c, { readyReplicas: ready }).catch((err) => this.log.debug('readyReplicas not written', { cluster: key, err }));
  }

  /** Places replica `i` on another host, its own lost, and starts it there; no host for it backs off as a failed start. */
  private move(key: string, c: Obj, live: Live, i: number): void {
    const from = this.placement.replicaHosts(c)?.[i];
    live.restarting.add(i);
    void this.placement
      .move(c, i)
      .then(async (choice) => {
        if ('refusal' in choice) throw new KubicleError('Unavailable', `no host for replica ${i}: ${choice.refusal}`);
        await this.setStatus(c, { replicaHosts: choice.hosts });
        this.log.warn('control-plane replica moved off a lost host', { cluster: key, replica: i, from, to: choice.hosts[i] });
      })
      .then(
        () => {
          live.restarting.delete(i);
          this.restart(key, c, live, i);
        },
        (err) => {
          live.restarting.delete(i);
          this.backOff(key, live, i, err);
        },
      );
  }

  /**
   * Removes control planes from `host` that belong to no cluster there: a replica moved elsewhere
   * while its host was away (its process may still run against the store), or one of a cluster
   * deleted meanwhile.
   */
  private async removeStrays(host: string, ids: string[]): Promise<void> {
    const expected = new Set(this.clusters.list().flatMap((c) => (this.placement.replicaHosts(c) ?? []).flatMap((h, i) => (h === host ? [this.layout.sandboxId(c, i)] : []))));
    for (const id of ids.filter((x) => !expected.has(x))) {
      this.log.warn('control plane belongs to no cluster on this host; removing it', { host, sandbox: id });
      await this.opts.hosts
        .agent(host)
        .removeSandbox(id, 0)
        .catch((err) => this.log.warn('stray control plane not removed', { host, sandbox: id, err }));
    }
  }

  /** Probes every replica of a running cluster that is not being started. */
  private async probe(c: Obj, live: Live): Promise<void> {
    live.caPem ??= await readFile(path.join(this.layout.dataDir(c), 'pki', 'ca.crt'), 'utf8').catch(() => undefined);
    const ca = live.caPem;
    if (ca) await Promise.all(live.sockets.map((socket, i) => (live.restarting.has(i) ? undefined : this.health.probe(socket, ca))));
  }

  private async sleep(key: string, c: Obj, live: Live): Promise<void> {
    // Pods need their kubelet (restarts, probes): a cluster that runs any stays awake.
    if ((await this.opts.sandboxes.hasRunning(this.layout.scope(c))) || (await this.askTenant(c, live, hasPendingCronJobs))) {
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
    if (slept) await this.setStatus(c, { phase: 'Sleeping', message: 'idle; the next connection wakes it', readyReplicas: 0 }).catch(() => {});
  }

  /** The cluster's own API server asked as its admin (provider/tenant-api.ts). */
  private askTenant<T>(c: Obj, live: Live, ask: (admin: KubeClient) => Promise<T>): Promise<T> {
    // Credentials read fresh each time: a few small files, and none held in memory between uses.
    return askTenant(path.join(this.layout.dataDir(c), 'pki'), c.status.endpoint, live.sockets[0], ask);
  }

  /** Why the tenant's quota leaves no room for this Cluster beside those it already has, if it does not. */
  private quotaRefusal(c: Obj): string | undefined {
    const ns = c.metadata.namespace;
    const admitted = this.clusters.listNamespace(ns).filter((x) => x.metadata.uid !== c.metadata.uid && endpointAddress(x));
    return clusterQuotaRefusal(ns, this.tenants.get(ns)?.spec?.quota ?? {}, admitted, c);
  }

  private liveOf(key: string, c: Obj): Live {
    let live = this.live.get(key);
    if (!live) {
      const phase = c.status?.phase;
      const sockets = Array.from({ length: replicaCount(c) }, (_, i) => apiSocketPath(this.layout.dataDir(c, i)));
      live = { state: phase === 'Sleeping' ? 'asleep' : 'stopped', chain: Promise.resolve(), startedAt: 0, sockets, restarting: new Set(), backoff: new Map() };
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
