import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { Informer, objectKey } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import { KubeletServer } from './kubelet-server.js';
import { LocalVolumeCleaner } from './local-volumes.js';
import { parseResolvConf } from './pod-dns.js';
import { PodWorker } from './pod-worker.js';
import { StatsProvider } from './stats.js';

export interface KubeletOptions {
  nodeName: string;
  /** The address the node reports (InternalIP) and pods see as hostIP. */
  hostIP: string;
  podCidr: string;
  heartbeatMs?: number;
  /** How often the agent's sandboxes are compared with what was last seen. */
  pollMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  maxPods?: number;
  labels?: Record<string, string>;
  /** The node's CPU and memory capacity (quantities); this host's when absent. A virtual node reports its tenant's quota. */
  capacity?: { cpu: string; memory: string };
  /** Where pods with dnsPolicy ClusterFirst resolve (upstream's --cluster-dns), and the cluster domain. */
  clusterDNS?: string[];
  clusterDomain?: string;
  /** The kubelet's own HTTPS API (logs for the API server): port, serving certificate, and the API server's token. */
  server?: { port: number; certPem: string; keyPem: string; token: string };
}

const stamp = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * The kubelet of one real node: registers the Node (capacity from this host, its pod CIDR),
 * renews its Lease, and runs the pods bound to it through the host agent's Sandbox API. The
 * agent is polled (one list call) so exits, OOM kills and restarts reach pod status without
 * events from below; sandboxes of pods the API no longer has are removed.
 */
export class Kubelet {
  private readonly pods: Informer;
  private readonly queue = new WorkQueue(100, 10_000);
  private readonly worker: PodWorker;
  private listed = false;
  private readonly stops = new Map<string, Promise<void>>();
  private seen = new Map<string, string>();
  /** Sandboxes of this node in the last poll after the pods were listed (-1: not polled yet). */
  private found = -1;

  constructor(
    private readonly client: KubeClient,
    private readonly agent: SandboxClient,
    private readonly opts: KubeletOptions,
    private readonly log: Logger,
  ) {
    this.pods = new Informer(client, `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${opts.nodeName}`)}`, log);
    this.pods.on({ add: (p) => this.queue.add(objectKey(p)), update: (_, p) => this.queue.add(objectKey(p)), delete: (p) => this.queue.add(objectKey(p)) });
    const hostResolver = parseResolvConf(existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : '');
    this.worker = new PodWorker(
      client,
      agent,
      {
        nodeName: opts.nodeName,
        hostIP: opts.hostIP,
        backoffBaseMs: opts.backoffBaseMs ?? 10_000,
        backoffMaxMs: opts.backoffMaxMs ?? 300_000,
        dns: { nameservers: opts.clusterDNS ?? [], domain: opts.clusterDomain ?? 'cluster.local' },
        hostResolver,
        wake: (pod) => this.queue.add(objectKey(pod)),
      },
      log,
    );
  }

  private nodeObject(): Obj {
    const cpu = this.opts.capacity?.cpu ?? String(os.cpus().length);
    const memory = this.opts.capacity?.memory ?? `${Math.floor(os.totalmem() / 1024)}Ki`;
    const capacity = { cpu, memory, pods: String(this.opts.maxPods ?? 110), 'ephemeral-storage': '100Gi' };
    const now = stamp();
    const condition = (type: string, status: string, reason: string, message: string) => ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now });
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: this.opts.nodeName, labels: { 'kubernetes.io/hostname': this.opts.nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...(this.opts.labels ?? {}) } },
      spec: { podCIDR: this.opts.podCidr, podCIDRs: [this.opts.podCidr] },
      status: {
        capacity,
        allocatable: capacity,
        conditions: [
          condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
          condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
          condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
          condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
        ],
        addresses: [
          { type: 'InternalIP', address: this.opts.hostIP },
          { type: 'Hostname', address: this.opts.nodeName },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: this.opts.server?.port ?? 10250 } },
        nodeInfo: {
          kubeletVersion: 'v1.30.0-kubicle',
          kubeProxyVersion: 'v1.30.0-kubicle',
          containerRuntimeVersion: 'runc://1.1',
          osImage: 'Kubicle host',
          kernelVersion: os.release(),
          operatingSystem: 'linux',
          architecture: 'amd64',
          machineID: this.opts.nodeName,
          systemUUID: this.opts.nodeName,
          bootID: this.opts.nodeName,
        },
      },
    };
  }

  private async register(): Promise<void> {
    const node = this.nodeObject();
    try {
      await this.client.create('/api/v1/nodes', node);
    } catch (err) {
      if (!isCode(err, 'AlreadyExists')) throw err;
      await this.client.patch(`/api/v1/nodes/${this.opts.nodeName}`, { spec: node.spec });
      await this.client.patch(`/api/v1/nodes/${this.opts.nodeName}/status`, { status: node.status });
    }
    this.log.info('node registered', { node: this.opts.nodeName });
  }

  private beats = 0;
  private async heartbeat(): Promise<void> {
    const name = this.opts.nodeName;
    if (this.beats++ % 4 === 0) {
      await this.client
        .patch(`/api/v1/nodes/${name}/status`, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: stamp() }] } }, 'application/strategic-merge-patch+json')
        .catch(() => {});
    }
    const renewTime = new Date().toISOString().replace(/(\.\d{3})Z$/, '$1000Z');
    const path = resourcePath({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: 'kube-node-lease' });
    try {
      await this.client.patch(`${path}/${name}`, { spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime } });
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
      await this.client.create(path, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-node-lease' }, spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime } }).catch(() => {});
    }
  }

  /**
   * Lists this node's sandboxes; queues pods whose sandbox changed and removes orphans. Skipped
   * while the node has no pods and its last list found no sandbox: only this kubelet makes its
   * node's sandboxes, and it does so for pods, so nothing can have changed. An empty cluster
   * then asks its host nothing (DESIGN §1: it costs nothing).
   */
  private async poll(): Promise<void> {
    if (this.listed && this.found === 0 && this.pods.list().length === 0) return;
    const list = (await this.agent.listSandboxes({ 'kubicle.io/node': this.opts.nodeName })).filter((s) => s.labels['kubicle.io/node'] === this.opts.nodeName);
    // Only a list made after the node's pods were known can say the node is idle.
    if (this.listed) this.found = list.length;
    const byUid = new Map(list.map((s) => [s.id, s]));
    const podsByUid = new Map(this.pods.list().map((p) => [p.metadata.uid, p]));
    for (const sb of list) {
      const pod = podsByUid.get(sb.id);
      if (!pod) {
        if (this.listed) this.stopping(sb.id, () => this.worker.removeOrphan(sb.id));
        continue;
      }
      const sig = JSON.stringify(sb.containers.map((c) => [c.name, c.attempt, c.state, c.exitCode]));
      if (this.seen.get(sb.id) !== sig) {
        this.seen.set(sb.id, sig);
        this.queue.add(objectKey(pod));
      }
    }
    for (const uid of this.seen.keys()) if (!byUid.has(uid)) this.seen.delete(uid);
  }

  /**
   * Stops a pod's sandbox in the background, once per pod: each waits out its own grace period,
   * as upstream's per-pod workers do, so fifty pods that ignore SIGTERM take one grace period,
   * not fifty, and neither the poll nor the sync workers are held meanwhile.
   */
  private stopping(uid: string, work: () => Promise<void>): void {
    if (this.stops.has(uid)) return;
    const p = work()
      .catch((err) => this.log.warn('pod stop failed', { pod: uid, err }))
      .finally(() => this.stops.delete(uid));
    this.stops.set(uid, p);
  }

  private async sync(key: string): Promise<void> {
    const pod = this.pods.get(key);
    if (!pod) return; // the poll removes its sandbox as an orphan
    if (pod.metadata.deletionTimestamp) {
      this.stopping(pod.metadata.uid, () =>
        this.worker.terminate(pod).catch((err) => {
          this.queue.addAfter(key, 1000); // try again: the pod is still there, terminating
          throw err;
        }),
      );
      return;
    }
    const sb = await this.agent.getSandbox(pod.metadata.uid).catch((err) => (isCode(err, 'NotFound') ? undefined : Promise.reject(err)));
    const next = await this.worker.sync(pod, sb);
    if (next !== undefined) this.queue.addAfter(key, next);
  }

  async run(signal: AbortSignal): Promise<void> {
    const s = this.opts.server;
    const api = s
      ? new KubeletServer({ host: this.opts.hostIP, port: s.port, certPem: s.certPem, keyPem: s.keyPem, token: s.token }, (ns, name) => this.pods.get(`${ns}/${name}`), this.agent, this.log, new StatsProvider(this.agent, this.opts.nodeName, () => this.pods.list()))
      : undefined;
    await api?.listen();
    signal.addEventListener('abort', () => api?.close(), { once: true });
    await this.register();
    this.pods.synced.then(() => {
      this.listed = true;
    });
    const tick = () => this.heartbeat().catch((err) => this.log.warn('node heartbeat failed', { err }));
    await tick();
    const beat = setInterval(() => void tick(), this.opts.heartbeatMs ?? 10_000);
    let polling = false;
    const poller = setInterval(() => {
      if (polling) return;
      polling = true;
      this.poll()
        .catch((err) => this.log.warn('sandbox poll failed', { err }))
        .finally(() => {
          polling = false;
        });
    }, this.opts.pollMs ?? 1000);
    signal.addEventListener(
      'abort',
      () => {
        clearInterval(beat);
        clearInterval(poller);
      },
      { once: true },
    );
    const volumes = new LocalVolumeCleaner(this.client, [this.opts.nodeName], (dir) => this.agent.removeHostDir(dir), this.log);
    await Promise.all([this.pods.run(signal), volumes.run(signal), this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('pod sync failed', { pod: key, err }))]);
  }
}
