import { bytes, milliCpu } from '../api/quantity.js';
import { Informer, objectKey } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { LocalVolumeCleaner } from './local-volumes.js';

/**
 * A NODE SIMULATOR, not a kubelet: it registers N nodes that run nothing, keeps their Leases
 * fresh, and plays the kubelet's part for pods bound to them: Running and Ready at once; pods
 * whose restartPolicy is not Always (Job pods) succeed after a second (or the seconds in
 * annotation kubicle.io/simulated-runtime-seconds), or fail with the exit code in annotation
 * kubicle.io/simulated-exit-code; pods being deleted are finished off. Controllers
 * and the scheduler can be tested and benchmarked at scale with it (like kwok), and users can try
 * capacity (`kubicle simulate nodes N`).
 */
export interface SimulatorOptions {
  count: number;
  prefix?: string;
  cpu?: string;
  memory?: string;
  pods?: number;
  /** Extra labels for every node. */
  labels?: Record<string, string>;
  /** How long a run-to-completion pod runs. */
  runMs?: number;
  heartbeatMs?: number;
}

const simulatedLabel = 'kubicle.io/simulated';
const stamp = (d = new Date()) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export class NodeSimulator {
  private readonly pods: Informer;
  private readonly queue = new WorkQueue(50, 5_000);
  private readonly names: string[];
  private readonly ips = new Map<string, string>();
  private nextIp = 0;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly client: KubeClient,
    private readonly opts: SimulatorOptions,
    private readonly log: Logger,
  ) {
    const prefix = opts.prefix ?? 'sim-node';
    this.names = Array.from({ length: opts.count }, (_, i) => `${prefix}-${i}`);
    const mine = new Set(this.names);
    this.pods = new Informer(client, '/api/v1/pods', log);
    const consider = (pod: Obj) => {
      if (mine.has(pod.spec?.nodeName)) this.queue.add(objectKey(pod));
    };
    this.pods.on({ add: consider, update: (_, p) => consider(p) });
  }

  get nodeNames(): string[] {
    return [...this.names];
  }

  private nodeObject(name: string, i: number): Obj {
    const now = stamp();
    const resources = { cpu: this.opts.cpu ?? '8', memory: this.opts.memory ?? '32Gi', pods: String(this.opts.pods ?? 110), 'ephemeral-storage': '100Gi' };
    const condition = (type: string, status: string, reason: string, message: string) => ({ type, status, reason, message, lastHeartbeatTime: now, lastTransitionTime: now });
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', [simulatedLabel]: 'true', ...(this.opts.labels ?? {}) },
        annotations: { 'kubicle.io/node-simulator': 'this node runs nothing; pods on it are simulated' },
      },
      spec: {},
      status: {
        capacity: resources,
        allocatable: resources,
        conditions: [
          condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'simulated'),
          condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'simulated'),
          condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'simulated'),
          condition('Ready', 'True', 'KubeletReady', 'simulated node is ready'),
        ],
        addresses: [
          { type: 'InternalIP', address: `10.200.${Math.floor(i / 250)}.${(i % 250) + 1}` },
          { type: 'Hostname', address: name },
        ],
        nodeInfo: {
          kubeletVersion: 'v1.30.0-kubicle-simulated',
          kubeProxyVersion: 'v1.30.0-kubicle-simulated',
          containerRuntimeVersion: 'simulated://0',
          osImage: 'Kubicle node simulator',
          kernelVersion: 'simulated',
          operatingSystem: 'linux',
          architecture: 'amd64',
          machineID: name,
          systemUUID: name,
          bootID: name,
        },
      },
    };
  }

  private async register(): Promise<void> {
    await Promise.all(
      this.names.map(async (name, i) => {
        const node = this.nodeObject(name, i);
        try {
          await this.client.create('/api/v1/nodes', node);
        } catch (err) {
          if (!isCode(err, 'AlreadyExists')) throw err;
          await this.client.patch(`/api/v1/nodes/${name}/status`, { status: node.status });
        }
      }),
    );
    this.log.info('simulated nodes registered', { count: this.names.length });
  }

  private beats = 0;

  /**
   * Usage as metrics.k8s.io reports it. A pod's simulated usage comes from its annotations
   * kubicle.io/simulated-cpu and kubicle.io/simulated-memory (set them to drive an HPA); only
   * such pods get PodMetrics, and each node gets NodeMetrics summing them.
   */
  private async publishMetrics(): Promise<void> {
    const now = stamp();
    const mine = new Set(this.names);
    const perNode = new Map<string, { cpu: number; memory: number }>(this.names.map((n) => [n, { cpu: 0, memory: 0 }]));
    const writes: Promise<unknown>[] = [];
    for (const pod of this.pods.list()) {
      const a = pod.metadata.annotations ?? {};
      if (!mine.has(pod.spec?.nodeName) || pod.status?.phase !== 'Running' || (a['kubicle.io/simulated-cpu'] === undefined && a['kubicle.io/simulated-memory'] === undefined)) continue;
      const cpu = milliCpu(a['kubicle.io/simulated-cpu'] ?? '0');
      const memory = bytes(a['kubicle.io/simulated-memory'] ?? '0');
      const node = perNode.get(pod.spec.nodeName)!;
      node.cpu += cpu;
      node.memory += memory;
      const containers = (pod.spec.containers ?? []).map((c: Obj, i: number) => ({ name: c.name, usage: i === 0 ? { cpu: `${cpu}m`, memory: `${Math.round(memory / 1024)}Ki` } : { cpu: '0', memory: '0' } }));
      writes.push(this.upsert(`/apis/metrics.k8s.io/v1beta1/namespaces/${pod.metadata.namespace}/pods`, pod.metadata.name, { apiVersion: 'metrics.k8s.io/v1beta1', kind: 'PodMetrics', metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, labels: pod.metadata.labels }, timestamp: now, window: '10s', containers }));
    }
    if (this.beats % 5 === 1) {
      for (const [name, u] of perNode) {
        writes.push(this.upsert('/apis/metrics.k8s.io/v1beta1/nodes', name, { apiVersion: 'metrics.k8s.io/v1beta1', kind: 'NodeMetrics', metadata: { name }, timestamp: now, window: '10s', usage: { cpu: `${u.cpu}m`, memory: `${Math.round(u.memory / 1024)}Ki` } }));
      }
    }
    await Promise.allSettled(writes);
  }

  private async upsert(collection: string, name: string, obj: Obj): Promise<void> {
    try {
      await this.client.patch(`${collection}/${name}`, { metadata: { labels: obj.metadata.labels ?? null }, timestamp: obj.timestamp, window: obj.window, ...(obj.containers ? { containers: obj.containers } : { usage: obj.usage }) });
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
      await this.client.create(collection, obj).catch(() => {});
    }
  }

  /** Renews each node's Lease; every fifth beat (and the first) also posts Ready, as a kubelet's status update does. */
  private async heartbeat(): Promise<void> {
    if (this.beats++ % 5 === 0) {
      const now = stamp();
      await Promise.all(
        this.names.map((name) =>
          this.client
            .patch(`/api/v1/nodes/${name}/status`, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'simulated node is ready', lastHeartbeatTime: now }] } }, 'application/strategic-merge-patch+json')
            .catch(() => {}),
        ),
      );
    }
    const now = new Date().toISOString().replace('Z', '000Z').replace(/(\.\d{6})\d*Z$/, '$1Z');
    const path = resourcePath({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: 'kube-node-lease' });
    await Promise.all(
      this.names.map(async (name) => {
        const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace: 'kube-node-lease' }, spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: now } };
        try {
          await this.client.patch(`${path}/${name}`, { spec: lease.spec });
        } catch (err) {
          if (!isCode(err, 'NotFound')) throw err;
          await this.client.create(path, lease).catch(() => {});
        }
      }),
    );
  }

  private podIp(key: string): string {
    let ip = this.ips.get(key);
    if (!ip) {
      const n = this.nextIp++;
      ip = `10.244.${Math.floor(n / 250) % 250}.${(n % 250) + 2}`;
      this.ips.set(key, ip);
    }
    return ip;
  }

  private async sync(key: string): Promise<void> {
    const pod = this.pods.get(key);
    if (!pod) {
      this.ips.delete(key);
      return;
    }
    const path = resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name });
    if (pod.metadata.deletionTimestamp) {
      // The containers "stop" at once: finish the graceful deletion.
      await this.client.delete(`${path}?gracePeriodSeconds=0`, { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } }).catch((err) => {
        if (!isCode(err, 'NotFound') && !isCode(err, 'Conflict')) throw err;
      });
      return;
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const now = stamp();
    const node = this.names.indexOf(pod.spec.nodeName);
    const hostIP = `10.200.${Math.floor(node / 250)}.${(node % 250) + 1}`;
    const runsToCompletion = (pod.spec.restartPolicy ?? 'Always') !== 'Always';
    if (phase !== 'Running') {
      const containerStatuses = (pod.spec.containers ?? []).map((c: Obj) => ({
        name: c.name,
        image: c.image,
        imageID: `simulated://${c.image}`,
        containerID: `simulated://${pod.metadata.uid}/${c.name}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      }));
      const cond = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: now });
      const ip = this.podIp(key);
      await this.client.patch(`${path}/status`, {
        status: {
          phase: 'Running',
          hostIP,
          hostIPs: [{ ip: hostIP }],
          podIP: ip,
          podIPs: [{ ip }],
          startTime: now,
          conditions: [cond('PodReadyToStartContainers'), cond('Initialized'), cond('ContainersReady'), cond('Ready'), cond('PodScheduled')],
          containerStatuses,
        },
      });
      if (runsToCompletion) {
        const seconds = Number(pod.metadata.annotations?.['kubicle.io/simulated-runtime-seconds']);
        this.queue.addAfter(key, Number.isFinite(seconds) ? seconds * 1000 : (this.opts.runMs ?? 1000));
      }
      return;
    }
    if (runsToCompletion) {
      const runFor = Number(pod.metadata.annotations?.['kubicle.io/simulated-runtime-seconds']);
      const started = Date.parse(pod.status?.startTime ?? '');
      if (Number.isFinite(runFor) && Number.isFinite(started) && Date.now() < started + runFor * 1000) {
        this.queue.addAfter(key, started + runFor * 1000 - Date.now() + 50);
        return;
      }
      const exitCode = Number(pod.metadata.annotations?.['kubicle.io/simulated-exit-code'] ?? 0);
      const terminated = { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: pod.status?.startTime ?? now, finishedAt: now, containerID: `simulated://${pod.metadata.uid}` };
      const notReady = (type: string) => ({ type, status: 'False', reason: 'PodCompleted', lastProbeTime: null, lastTransitionTime: now });
      await this.client.patch(
        `${path}/status`,
        {
          status: {
            phase: exitCode === 0 ? 'Succeeded' : 'Failed',
            conditions: [notReady('Ready'), notReady('ContainersReady')],
            containerStatuses: (pod.status?.containerStatuses ?? []).map((c: Obj) => ({ ...c, ready: false, started: false, state: { terminated: { ...terminated, containerID: c.containerID } } })),
          },
        },
        'application/strategic-merge-patch+json',
      );
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await this.register();
    const tick = () =>
      Promise.all([this.heartbeat(), this.publishMetrics()]).catch((err) => this.log.warn('node heartbeat failed', { err }));
    await tick();
    const beat = setInterval(() => void tick(), this.opts.heartbeatMs ?? 10_000);
    this.timers.add(beat);
    signal.addEventListener('abort', () => {
      for (const t of this.timers) clearInterval(t);
    }, { once: true });
    // Simulated nodes keep no data: a deleted local volume pinned to one only needs its finalizer gone.
    const volumes = new LocalVolumeCleaner(this.client, this.names, undefined, this.log);
    await Promise.all([this.pods.run(signal), volumes.run(signal), this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('simulated pod sync failed', { pod: key, err }))]);
  }
}
