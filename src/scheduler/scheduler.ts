import { bytes, milliCpu } from '../api/quantity.js';
import { recordEvent } from '../client/event-recorder.js';
import { Informer, objectKey } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { FilterPlugin, NodeInfo, ScorePlugin } from './framework.js';
import { nodeAffinity, nodeAffinityPreferred } from './plugins/node-affinity.js';
import { nodeName, nodeUnschedulable } from './plugins/node-basics.js';
import { leastAllocated, nodeResourcesFit } from './plugins/node-resources-fit.js';
import { podRequests } from './plugins/pod-requests.js';
import { defaultSpread, ownerUid } from './plugins/spread.js';
import { taintToleration } from './plugins/taint-toleration.js';

/**
 * The default scheduler: one pod at a time, run every filter over every node, score the nodes
 * left, bind to the best through pods/binding. A pod that fits nowhere gets a FailedScheduling
 * event and a PodScheduled=False condition in upstream's words, and is retried when nodes change.
 * Placements are assumed at once, so a burst of pods does not overcommit a node before the
 * informer sees the bindings.
 */
export const defaultFilters: FilterPlugin[] = [nodeUnschedulable, nodeName, nodeAffinity, taintToleration, nodeResourcesFit];
export const defaultScores: ScorePlugin[] = [leastAllocated, nodeAffinityPreferred, defaultSpread];

export interface SchedulerOptions {
  name?: string;
  filters?: FilterPlugin[];
  scores?: ScorePlugin[];
}

export class Scheduler {
  private readonly pods: Informer;
  private readonly nodes: Informer;
  private readonly queue = new WorkQueue(100, 10_000);
  /** The cluster view, kept up to date from informer events and assumptions (never rebuilt per pod). */
  private readonly infos = new Map<string, NodeInfo>();
  /** Pods counted on a node: bound, or assumed while their binding is under way. */
  private readonly placed = new Map<string, { node: string; pod: Obj; cpu: number; memory: number }>();
  /** Pods that fit nowhere, retried when a node appears or changes. */
  private readonly unschedulable = new Set<string>();
  private readonly lastFailure = new Map<string, string>();
  private readonly binding = new Set<Promise<void>>();
  private nextStart = 0;
  private readonly name: string;
  private readonly filters: FilterPlugin[];
  private readonly scores: ScorePlugin[];
  scheduled = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    opts: SchedulerOptions = {},
  ) {
    this.name = opts.name ?? 'default-scheduler';
    this.filters = opts.filters ?? defaultFilters;
    this.scores = opts.scores ?? defaultScores;
    this.pods = new Informer(client, '/api/v1/pods', log);
    this.nodes = new Informer(client, '/api/v1/nodes', log);
    const consider = (pod: Obj) => {
      const key = objectKey(pod);
      if (pod.metadata?.deletionTimestamp || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') {
        this.unplace(key);
        return;
      }
      if (pod.spec?.nodeName) {
        this.place(key, pod, pod.spec.nodeName);
        this.unschedulable.delete(key);
        return;
      }
      if (this.mine(pod)) this.queue.add(key);
    };
    this.pods.on({
      add: consider,
      update: (_, pod) => consider(pod),
      delete: (pod) => {
        const key = objectKey(pod);
        this.unplace(key);
        this.unschedulable.delete(key);
        this.lastFailure.delete(key);
      },
    });
    const retryAll = () => {
      for (const key of this.unschedulable) this.queue.add(key);
    };
    this.nodes.on({
      add: (node) => {
        this.upsertNode(node);
        retryAll();
      },
      update: (_, node) => {
        this.upsertNode(node);
        retryAll();
      },
      delete: (node) => this.infos.delete(node.metadata.name),
    });
  }

  private upsertNode(node: Obj): void {
    const a = node.status?.allocatable ?? node.status?.capacity ?? {};
    const allocatable = { cpu: milliCpu(a.cpu ?? 0), memory: bytes(a.memory ?? 0), pods: Number(a.pods ?? 110) };
    const info = this.infos.get(node.metadata.name);
    if (info) {
      info.node = node;
      info.allocatable = allocatable;
      return;
    }
    const fresh: NodeInfo = { node, pods: [], requested: { cpu: 0, memory: 0, pods: 0 }, allocatable, owners: new Map() };
    this.infos.set(node.metadata.name, fresh);
    // Pods seen before their node: count them now.
    for (const p of this.placed.values()) if (p.node === node.metadata.name) this.count(fresh, p, 1);
  }

  private count(info: NodeInfo, p: { pod: Obj; cpu: number; memory: number }, sign: 1 | -1): void {
    if (sign > 0) info.pods.push(p.pod);
    else info.pods.splice(info.pods.indexOf(p.pod), 1);
    info.requested.cpu += sign * p.cpu;
    info.requested.memory += sign * p.memory;
    info.requested.pods += sign;
    const owner = ownerUid(p.pod);
    if (owner) {
      const n = (info.owners.get(owner) ?? 0) + sign;
      if (n > 0) info.owners.set(owner, n);
      else info.owners.delete(owner);
    }
  }

  private place(key: string, pod: Obj, node: string): void {
    this.unplace(key);
    const r = podRequests(pod);
    const p = { node, pod, cpu: r.cpu, memory: r.memory };
    this.placed.set(key, p);
    const info = this.infos.get(node);
    if (info) this.count(info, p, 1);
  }

  private unplace(key: string): void {
    const p = this.placed.get(key);
    if (!p) return;
    this.placed.delete(key);
    const info = this.infos.get(p.node);
    if (info) this.count(info, p, -1);
  }

  private mine(pod: Obj): boolean {
    return (pod.spec?.schedulerName ?? 'default-scheduler') === this.name && !pod.metadata?.deletionTimestamp && !['Succeeded', 'Failed'].includes(pod.status?.phase);
  }

  private async scheduleOne(key: string): Promise<void> {
    const pod = this.pods.get(key);
    if (!pod || pod.spec?.nodeName || this.placed.has(key) || !this.mine(pod)) return;
    const nodes = [...this.infos.values()];
    // Like upstream's percentageOfNodesToScore: in a large cluster, stop once enough feasible
    // nodes are found (at least 100; 50% less 1% per 125 nodes, at least 5%), starting where the
    // previous cycle stopped so every node gets its turn.
    const enough = nodes.length <= 100 ? nodes.length : Math.max(100, Math.floor((nodes.length * Math.max(5, 50 - nodes.length / 125)) / 100));
    const reasons = new Map<string, number>();
    const feasible: NodeInfo[] = [];
    let checked = 0;
    for (; checked < nodes.length && feasible.length < enough; checked++) {
      const n = nodes[(this.nextStart + checked) % nodes.length];
      let why: string | undefined;
      for (const f of this.filters) if ((why = f.filter(pod, n))) break;
      if (why) reasons.set(why, (reasons.get(why) ?? 0) + 1);
      else feasible.push(n);
    }
    this.nextStart = nodes.length ? (this.nextStart + checked) % nodes.length : 0;
    if (!feasible.length) {
      const detail = [...reasons].sort((a, b) => a[0].localeCompare(b[0])).map(([why, n]) => `${n} ${why}`);
      const message = `0/${nodes.length} nodes are available${detail.length ? `: ${detail.join(', ')}` : ''}.`;
      this.unschedulable.add(key);
      await this.reportUnschedulable(pod, message);
      return;
    }
    let best = feasible[0];
    let bestScore = -1;
    for (const n of feasible) {
      // A little noise breaks ties between equal nodes, spreading a burst.
      const s = this.scores.reduce((sum, p) => sum + p.weight * p.score(pod, n), 0) + Math.random() * 1e-3;
      if (s > bestScore) {
        best = n;
        bestScore = s;
      }
    }
    const nodeName = best.node.metadata.name;
    this.place(key, pod, nodeName);
    // The binding cycle runs on its own: the next pod is placed meanwhile against the assumption.
    const binding = this.bind(pod, key, nodeName).finally(() => this.binding.delete(binding));
    this.binding.add(binding);
  }

  private async bind(pod: Obj, key: string, nodeName: string): Promise<void> {
    try {
      await this.client.create(`${resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name })}/binding`, {
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
    await this.event(pod, 'Normal', 'Scheduled', `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${nodeName}`);
  }

  private async reportUnschedulable(pod: Obj, message: string): Promise<void> {
    const key = objectKey(pod);
    if (this.lastFailure.get(key) === message) return;
    this.lastFailure.set(key, message);
    await this.event(pod, 'Warning', 'FailedScheduling', message);
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      await this.client.patch(
        `${resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name })}/status`,
        { status: { conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastTransitionTime: now, lastProbeTime: null }] } },
        'application/strategic-merge-patch+json',
      );
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
    }
  }

  private async event(pod: Obj, type: string, reason: string, message: string): Promise<void> {
    await recordEvent(this.client, pod, 'v1', 'Pod', this.name, type, reason, message).catch((err) => this.log.warn('could not record event', { reason, err }));
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = [this.pods.run(signal), this.nodes.run(signal)];
    await Promise.race([Promise.all([this.pods.synced, this.nodes.synced]), Promise.all(informers)]);
    await Promise.all([...informers, this.queue.run(1, (key) => this.scheduleOne(key), signal, (key, err) => this.log.warn('scheduling failed', { pod: key, err }))]);
    await Promise.allSettled([...this.binding]);
  }
}
