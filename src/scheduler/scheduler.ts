import { SELECTED_NODE_ANNOTATION } from '../api/local-path.js';
import { EventRecorder, type EventType } from '../client/event-recorder.js';
import { Informer, objectKey } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { ClusterView, FilterPlugin, NodeInfo, ScorePlugin } from './framework.js';
import { addPod, allocatableOf, cloneNodeInfo, newNodeInfo, removePod } from './node-info.js';
import { interPodAffinity, interPodAffinityScore } from './plugins/inter-pod-affinity.js';
import { nodeAffinity, nodeAffinityPreferred } from './plugins/node-affinity.js';
import { nodeName, nodeUnschedulable } from './plugins/node-basics.js';
import { leastAllocated, nodeResourcesFit } from './plugins/node-resources-fit.js';
import { defaultSpread } from './plugins/spread.js';
import { taintToleration } from './plugins/taint-toleration.js';
import { podTopologySpread, podTopologySpreadScore } from './plugins/topology-spread.js';
import { volumeBinding } from './plugins/volume-binding.js';
import { type Candidate, findCandidate, mayPreempt, priorityOf } from './preemption.js';

/**
 * The default scheduler: pods in priority order, one at a time; run every filter over the nodes,
 * score the nodes left, bind to the best through pods/binding. A pod that fits nowhere may
 * preempt pods of lower priority (it is then nominated to that node, and the space is held for
 * it); otherwise it gets a FailedScheduling event and a PodScheduled=False condition in
 * upstream's words, and is retried when nodes change or pods go. Placements are assumed at once,
 * so a burst of pods does not overcommit a node before the informer sees the bindings.
 */
export const defaultFilters: FilterPlugin[] = [nodeUnschedulable, nodeName, nodeAffinity, taintToleration, nodeResourcesFit, volumeBinding, interPodAffinity, podTopologySpread];
export const defaultScores: ScorePlugin[] = [leastAllocated, nodeAffinityPreferred, defaultSpread, interPodAffinityScore, podTopologySpreadScore];

export interface SchedulerOptions {
  name?: string;
  filters?: FilterPlugin[];
  scores?: ScorePlugin[];
}

const noVictims = 'No preemption victims found for incoming pod';
const notHelpful = 'Preemption is not helpful for scheduling';

export class Scheduler {
  private readonly pods: Informer;
  private readonly nodes: Informer;
  private readonly namespaces: Informer;
  private readonly budgets: Informer;
  private readonly claims: Informer;
  private readonly volumes: Informer;
  private readonly classes: Informer;
  private readonly queue: WorkQueue;
  /** The cluster view, kept up to date from informer events and assumptions (never rebuilt per pod). */
  private readonly infos = new Map<string, NodeInfo>();
  /** Pods counted on a node: bound, or assumed while their binding is under way. */
  private readonly placed = new Map<string, { node: string; pod: Obj }>();
  /** Pods that preempted others, with the node held for them until they are bound. */
  private readonly nominated = new Map<string, { node: string; pod: Obj }>();
  /** Pods that fit nowhere, retried when a node appears or changes or a pod goes. */
  private readonly unschedulable = new Set<string>();
  private retryTimer?: NodeJS.Timeout;
  /** Set once run's signal aborts: bindings under way stop waiting for claims. */
  private stopping = false;
  private readonly lastFailure = new Map<string, string>();
  private readonly binding = new Set<Promise<void>>();
  private nextStart = 0;
  private readonly name: string;
  private readonly filters: FilterPlugin[];
  private readonly scores: ScorePlugin[];
  private readonly cluster: ClusterView & { nodes: NodeInfo[] };
  scheduled = 0;

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    opts: SchedulerOptions = {},
  ) {
    this.name = opts.name ?? 'default-scheduler';
    this.events = new EventRecorder(client, this.name, log);
    this.filters = opts.filters ?? defaultFilters;
    this.scores = opts.scores ?? defaultScores;
    this.pods = new Informer(client, '/api/v1/pods', log);
    this.nodes = new Informer(client, '/api/v1/nodes', log);
    this.namespaces = new Informer(client, '/api/v1/namespaces', log);
    this.budgets = new Informer(client, '/apis/policy/v1/poddisruptionbudgets', log);
    this.claims = new Informer(client, '/api/v1/persistentvolumeclaims', log);
    this.volumes = new Informer(client, '/api/v1/persistentvolumes', log);
    this.classes = new Informer(client, '/apis/storage.k8s.io/v1/storageclasses', log);
    this.queue = new WorkQueue(100, 10_000, (key) => priorityOf(this.pods.get(key) ?? {}));
    const namespaces = this.namespaces;
    const { claims, volumes, classes } = this;
    this.cluster = {
      nodes: [],
      namespaceLabels: (ns) => namespaces.get(ns)?.metadata?.labels,
      storage: { claim: (ns, name) => claims.get(`${ns}/${name}`), volume: (name) => volumes.get(name), storageClass: (name) => classes.get(name) },
    };
    // A claim created, bound or given a volume may be what a waiting pod needs.
    for (const i of [claims, volumes, classes]) i.on({ add: () => this.retrySoon(), update: () => this.retrySoon() });
    const consider = (pod: Obj) => {
      const key = objectKey(pod);
      if (pod.metadata?.deletionTimestamp || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') {
        this.forgetPod(key);
        return;
      }
      if (pod.spec?.nodeName) {
        const known = this.placed.get(key);
        this.place(key, pod, pod.spec.nodeName);
        this.unschedulable.delete(key);
        this.nominated.delete(key);
        // A newly bound pod may be what another pod's affinity waits for.
        if (!known) this.retrySoon();
        return;
      }
      if (this.mine(pod)) this.queue.add(key);
    };
    this.pods.on({
      add: consider,
      update: (_, pod) => consider(pod),
      delete: (pod) => this.forgetPod(objectKey(pod)),
    });
    this.nodes.on({
      add: (node) => {
        this.upsertNode(node);
        this.retrySoon();
      },
      update: (_, node) => {
        this.upsertNode(node);
        this.retrySoon();
      },
      delete: (node) => {
        this.infos.delete(node.metadata.name);
        this.cluster.nodes = [...this.infos.values()];
      },
    });
  }

  /** A pod gone or finished: its room is free, which may let a waiting pod in. */
  private forgetPod(key: string): void {
    const wasPlaced = this.placed.has(key);
    this.unplace(key);
    this.unschedulable.delete(key);
    this.lastFailure.delete(key);
    this.nominated.delete(key);
    if (wasPlaced) this.retrySoon();
  }

  /** Re-queues every unschedulable pod once, shortly: events come in bursts. */
  private retrySoon(): void {
    if (!this.unschedulable.size || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      for (const key of this.unschedulable) this.queue.add(key);
    }, 50);
  }

  private upsertNode(node: Obj): void {
    const info = this.infos.get(node.metadata.name);
    if (info) {
      info.node = node;
      info.allocatable = allocatableOf(node);
      return;
    }
    const fresh = newNodeInfo(node);
    this.infos.set(node.metadata.name, fresh);
    this.cluster.nodes = [...this.infos.values()];
    // Pods seen before their node: count them now.
    for (const p of this.placed.values()) if (p.node === node.metadata.name) addPod(fresh, p.pod);
  }

  private place(key: string, pod: Obj, node: string): void {
    this.unplace(key);
    this.placed.set(key, { node, pod });
    const info = this.infos.get(node);
    if (info) addPod(info, pod);
  }

  private unplace(key: string): void {
    const p = this.placed.get(key);
    if (!p) return;
    this.placed.delete(key);
    const info = this.infos.get(p.node);
    if (info) removePod(info, p.pod);
  }

  private mine(pod: Obj): boolean {
    return (pod.spec?.schedulerName ?? 'default-scheduler') === this.name && !pod.metadata?.deletionTimestamp && !['Succeeded', 'Failed'].includes(pod.status?.phase);
  }

  /** The node as `pod` must see it: with the room held for nominated pods of at least its priority. */
  private withNominated(info: NodeInfo, pod: Obj, key: string): NodeInfo {
    if (!this.nominated.size) return info;
    let out = info;
    for (const [k, n] of this.nominated) {
      if (k === key || n.node !== info.node.metadata.name || priorityOf(n.pod) < priorityOf(pod)) continue;
      if (out === info) out = cloneNodeInfo(info);
      addPod(out, n.pod);
    }
    return out;
  }

  /** The first filter that refuses the node, with the plugin, or undefined when it fits. */
  private check(pod: Obj, info: NodeInfo, prepared: unknown[]): { reason: string; plugin: FilterPlugin } | undefined {
    for (let i = 0; i < this.filters.length; i++) {
      const reason = this.filters[i].filter(pod, info, prepared[i]);
      if (reason) return { reason, plugin: this.filters[i] };
    }
    return undefined;
  }

  private async scheduleOne(key: string): Promise<void> {
    const pod = this.pods.get(key);
    if (!pod || pod.spec?.nodeName || this.placed.has(key) || !this.mine(pod)) return;
    const nodes = this.cluster.nodes;
    const prepared = this.filters.map((f) => f.prepare?.(pod, this.cluster));
    // A pod that preempted goes back to its nominated node if it fits there now.
    const held = this.nominated.get(key);
    const heldInfo = held && this.infos.get(held.node);
    if (heldInfo && !this.check(pod, this.withNominated(heldInfo, pod, key), prepared)) {
      this.assume(pod, key, held.node);
      return;
    }
    // Like upstream's percentageOfNodesToScore: in a large cluster, stop once enough feasible
    // nodes are found (at least 100; 50% less 1% per 125 nodes, at least 5%), starting where the
    // previous cycle stopped so every node gets its turn.
    const enough = nodes.length <= 100 ? nodes.length : Math.max(100, Math.floor((nodes.length * Math.max(5, 50 - nodes.length / 125)) / 100));
    const reasons = new Map<string, number>();
    const curable: NodeInfo[] = [];
    const feasible: NodeInfo[] = [];
    let checked = 0;
    for (; checked < nodes.length && feasible.length < enough; checked++) {
      const n = nodes[(this.nextStart + checked) % nodes.length];
      const refused = this.check(pod, this.withNominated(n, pod, key), prepared);
      if (!refused) feasible.push(n);
      else {
        reasons.set(refused.reason, (reasons.get(refused.reason) ?? 0) + 1);
        if (refused.plugin.resolvable?.(refused.reason)) curable.push(n);
      }
    }
    this.nextStart = nodes.length ? (this.nextStart + checked) % nodes.length : 0;
    if (!feasible.length) {
      await this.unschedulableOrPreempt(pod, key, nodes.length, reasons, curable);
      return;
    }
    const scorePrepared = this.scores.map((s) => s.prepare?.(pod, this.cluster));
    let best = feasible[0];
    let bestScore = -1;
    for (const n of feasible) {
      let s = Math.random() * 1e-3; // a little noise breaks ties between equal nodes, spreading a burst
      for (let i = 0; i < this.scores.length; i++) s += this.scores[i].weight * this.scores[i].score(pod, n, scorePrepared[i]);
      if (s > bestScore) {
        best = n;
        bestScore = s;
      }
    }
    this.assume(pod, key, best.node.metadata.name);
  }

  /** Counts the pod on the node at once; the binding cycle runs on its own meanwhile. */
  private assume(pod: Obj, key: string, nodeName: string): void {
    this.place(key, pod, nodeName);
    const binding = this.bind(pod, key, nodeName).finally(() => this.binding.delete(binding));
    this.binding.add(binding);
  }

  private async unschedulableOrPreempt(pod: Obj, key: string, total: number, reasons: Map<string, number>, curable: NodeInfo[]): Promise<void> {
    const summary = (counts: Map<string, number>) =>
      `0/${total} nodes are available${counts.size ? `: ${[...counts].sort((a, b) => a[0].localeCompare(b[0])).map(([why, n]) => `${n} ${why}`).join(', ')}` : ''}.`;
    let message = summary(reasons);
    this.unschedulable.add(key);
    if (mayPreempt(pod) && total > 0 && !this.nominated.has(key)) {
      const candidate = curable.length ? findCandidate(pod, this.cluster, this.filters, curable, this.budgets.list()) : undefined;
      if (candidate) await this.preempt(pod, key, candidate);
      else {
        const why = new Map<string, number>();
        if (curable.length) why.set(noVictims, curable.length);
        if (total - curable.length) why.set(notHelpful, total - curable.length);
        message += ` preemption: ${summary(why)}`;
      }
    }
    await this.reportUnschedulable(pod, message);
  }

  /**
   * Nominates the pod to the candidate's node and evicts the victims, as upstream: a
   * DisruptionTarget condition on each, then a graceful delete, then a Preempted event.
   */
  private async preempt(pod: Obj, key: string, c: Candidate): Promise<void> {
    const node = c.node.node.metadata.name;
    this.nominated.set(key, { node, pod });
    this.log.info('preempting', { pod: key, node, victims: c.victims.map(objectKey) });
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const ignoreGone = (err: unknown) => {
      if (!isCode(err, 'NotFound')) throw err;
    };
    await this.client.patch(`${podPath(pod)}/status`, { status: { nominatedNodeName: node } }, 'application/strategic-merge-patch+json').catch(ignoreGone);
    await Promise.all(
      c.victims.map(async (v) => {
        const condition = { type: 'DisruptionTarget', status: 'True', reason: 'PreemptionByScheduler', message: `${this.name}: preempting to accommodate a higher priority pod`, lastTransitionTime: now, lastProbeTime: null };
        await this.client.patch(`${podPath(v)}/status`, { status: { conditions: [condition] } }, 'application/strategic-merge-patch+json').catch(ignoreGone);
        await this.client.delete(podPath(v)).catch(ignoreGone);
        await this.event(v, 'Normal', 'Preempted', `Preempted by pod ${pod.metadata.uid} on node ${node}`);
      }),
    );
  }

  private async bind(pod: Obj, key: string, nodeName: string): Promise<void> {
    try {
      await this.bindClaims(pod, nodeName);
    } catch (err) {
      // A claim changed or went meanwhile: the next cycle sees it as it is now.
      this.unplace(key);
      this.log.warn('selecting a node for the claims failed', { pod: key, node: nodeName, err });
      this.queue.addRateLimited(key);
      return;
    }
    try {
      await this.client.create(`${podPath(pod)}/binding`, {
        apiVersion: 'v1',
        kind: 'Binding',
        metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace },
        target: { apiVersion: 'v1', kind: 'Node', name: nodeName },
      });
    } catch (err) {
      this.unplace(key);
      // Bound meanwhile, or gone: nothing left to do. Otherwise try the pod again later.
      if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) {
        this.log.warn('binding failed', { pod: key, node: nodeName, err });
        this.queue.addRateLimited(key);
      }
      return;
    }
    this.scheduled++;
    this.unschedulable.delete(key);
    this.lastFailure.delete(key);
    this.nominated.delete(key);
    this.retrySoon(); // the pod may be what another pod's affinity waits for
    await this.event(pod, 'Normal', 'Scheduled', `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${nodeName}`);
  }

  /**
   * Upstream's VolumeBinding PreBind: each unbound WaitForFirstConsumer claim of the pod is told
   * the chosen node, and the pod is bound once they are (or after a while: the kubelet then waits
   * for them itself), so it does not reach its node before its volumes.
   */
  private async bindClaims(pod: Obj, nodeName: string): Promise<void> {
    const ns = pod.metadata.namespace;
    const waiting: string[] = [];
    for (const v of pod.spec?.volumes ?? []) {
      const name = v.persistentVolumeClaim?.claimName;
      const pvc = name && this.claims.get(`${ns}/${name}`);
      if (!pvc || pvc.spec?.volumeName || this.classes.get(pvc.spec?.storageClassName ?? '')?.volumeBindingMode !== 'WaitForFirstConsumer') continue;
      waiting.push(`${ns}/${name}`);
      if (pvc.metadata.annotations?.[SELECTED_NODE_ANNOTATION]) continue;
      await this.client.patch(resourcePath({ version: 'v1', plural: 'persistentvolumeclaims', namespace: ns, name }), { metadata: { annotations: { [SELECTED_NODE_ANNOTATION]: nodeName } } });
    }
    const deadline = Date.now() + 30_000;
    while (waiting.some((k) => !this.claims.get(k)?.spec?.volumeName) && Date.now() < deadline && !this.stopping) await new Promise((r) => setTimeout(r, 50));
  }

  private async reportUnschedulable(pod: Obj, message: string): Promise<void> {
    const key = objectKey(pod);
    if (this.lastFailure.get(key) === message) return;
    this.lastFailure.set(key, message);
    await this.event(pod, 'Warning', 'FailedScheduling', message);
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      await this.client.patch(
        `${podPath(pod)}/status`,
        { status: { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastTransitionTime: now, lastProbeTime: null }] } },
        'application/strategic-merge-patch+json',
      );
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
    }
  }

  private async event(pod: Obj, type: EventType, reason: string, message: string): Promise<void> {
    this.events.record(pod, 'v1', 'Pod', type, reason, message);
  }

  async run(signal: AbortSignal): Promise<void> {
    const all = [this.pods, this.nodes, this.namespaces, this.budgets, this.claims, this.volumes, this.classes];
    const informers = all.map((i) => i.run(signal));
    await Promise.race([Promise.all(all.map((i) => i.synced)), Promise.all(informers)]);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(this.retryTimer);
        this.stopping = true;
      },
      { once: true },
    );
    await Promise.all([...informers, this.queue.run(1, (key) => this.scheduleOne(key), signal, (key, err) => this.log.warn('scheduling failed', { pod: key, err }))]);
    await Promise.allSettled([...this.binding]);
  }
}

function podPath(pod: Obj): string {
  return resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name });
}
