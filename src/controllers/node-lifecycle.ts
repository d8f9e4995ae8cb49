import { tolerates } from '../api/node-match.js';
import { EventRecorder } from '../client/event-recorder.js';
import type { Informer } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Node lifecycle: a node whose heartbeat (its Lease in kube-node-lease, or its Ready condition)
 * is older than the grace period turns Ready=Unknown and gets the unreachable taints (NoSchedule
 * keeps new pods off, NoExecute evicts). Pods on a NoExecute-tainted node are evicted at once
 * if they do not tolerate the taint, after tolerationSeconds if they do for a while, never if
 * they do for ever. A node heard from again loses the taints.
 */
const UNREACHABLE = 'node.kubernetes.io/unreachable';
const stamp = (ms = Date.now()) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

export interface NodeLifecycleOptions {
  gracePeriodMs?: number;
  monitorPeriodMs?: number;
}

export class NodeLifecycleController {
  private readonly nodes: Informer;
  private readonly leases: Informer;
  private readonly pods: Informer;
  private readonly gracePeriodMs: number;
  private readonly monitorPeriodMs: number;

  private readonly events: EventRecorder;
  private readonly evictionEvents: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
    opts: NodeLifecycleOptions = {},
  ) {
    this.events = new EventRecorder(client, 'node-controller', log);
    this.evictionEvents = new EventRecorder(client, 'taint-eviction-controller', log);
    this.nodes = informers.for('/api/v1/nodes');
    this.leases = informers.for('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases');
    this.pods = informers.for('/api/v1/pods');
    this.gracePeriodMs = opts.gracePeriodMs ?? 40_000;
    this.monitorPeriodMs = opts.monitorPeriodMs ?? Math.min(5000, Math.max(200, this.gracePeriodMs / 4));
  }

  private lastHeard(node: Obj): number {
    const lease = this.leases.get(`kube-node-lease/${node.metadata.name}`);
    const ready = (node.status?.conditions ?? []).find((c: Obj) => c.type === 'Ready');
    return Math.max(Date.parse(lease?.spec?.renewTime ?? '') || 0, Date.parse(ready?.lastHeartbeatTime ?? '') || 0, Date.parse(node.metadata.creationTimestamp) || 0);
  }

  private async monitor(): Promise<void> {
    const now = Date.now();
    for (const node of this.nodes.list()) {
      const name = node.metadata.name;
      const taints: Obj[] = node.spec?.taints ?? [];
      const tainted = taints.some((t) => t.key === UNREACHABLE);
      const silent = now - this.lastHeard(node) > this.gracePeriodMs;
      if (silent && !tainted) {
        const conditions = (node.status?.conditions ?? []).map((c: Obj) =>
          c.status === 'Unknown' ? c : { ...c, status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: stamp() },
        );
        await this.client.patch(`/api/v1/nodes/${name}/status`, { status: { conditions } }, 'application/strategic-merge-patch+json');
        await this.client.patch(`/api/v1/nodes/${name}`, {
          spec: { taints: [...taints, { key: UNREACHABLE, effect: 'NoSchedule', timeAdded: stamp() }, { key: UNREACHABLE, effect: 'NoExecute', timeAdded: stamp() }] },
        });
        this.events.record(node, 'v1', 'Node', 'Normal', 'NodeNotReady', `Node ${name} status is now: NodeNotReady`);
        this.log.info('node unreachable', { node: name });
      } else if (!silent && tainted) {
        await this.client.patch(`/api/v1/nodes/${name}`, { spec: { taints: taints.filter((t) => t.key !== UNREACHABLE) } });
        this.log.info('node reachable again', { node: name });
      }
    }
    await this.evict(now);
  }

  /** Evicts pods from NoExecute-tainted nodes as their tolerations allow. */
  private async evict(now: number): Promise<void> {
    const noExecute = new Map<string, Obj[]>();
    for (const node of this.nodes.list()) {
      const t = (node.spec?.taints ?? []).filter((x: Obj) => x.effect === 'NoExecute');
      if (t.length) noExecute.set(node.metadata.name, t);
    }
    if (!noExecute.size) return;
    for (const pod of this.pods.list()) {
      const taints = noExecute.get(pod.spec?.nodeName);
      if (!taints || pod.metadata.deletionTimestamp) continue;
      const tolerations: Obj[] = pod.spec?.tolerations ?? [];
      let evictAt = Number.POSITIVE_INFINITY;
      for (const taint of taints) {
        const matching = tolerations.filter((t) => tolerates([t], taint));
        if (!matching.length) evictAt = 0;
        else if (matching.every((t) => t.tolerationSeconds !== undefined && t.tolerationSeconds !== null)) {
          const seconds = Math.min(...matching.map((t) => Math.max(0, t.tolerationSeconds)));
          evictAt = Math.min(evictAt, (Date.parse(taint.timeAdded ?? '') || now) + seconds * 1000);
        }
      }
      if (evictAt > now) continue;
      this.log.info('evicting pod from a NoExecute-tainted node', { pod: `${pod.metadata.namespace}/${pod.metadata.name}`, node: pod.spec.nodeName });
      this.evictionEvents.record(pod, 'v1', 'Pod', 'Normal', 'TaintManagerEviction', `Marking for deletion Pod ${pod.metadata.namespace}/${pod.metadata.name}`);
      // The node is gone: no kubelet will finish a graceful deletion, so delete at once.
      await this.client.delete(`${resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name })}?gracePeriodSeconds=0`).catch((err) => {
        if (!isCode(err, 'NotFound')) throw err;
      });
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.nodes.synced, this.leases.synced, this.pods.synced]);
    while (!signal.aborted) {
      await this.monitor().catch((err) => this.log.warn('node monitoring failed', { err }));
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.monitorPeriodMs);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  }
}
