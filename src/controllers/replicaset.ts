import { EventRecorder, type EventType } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controllerRef, isActivePod, isPodAvailable, isPodReady, ownerReferenceTo, selectorMatches } from './owner.js';

/**
 * ReplicaSet controller: keeps `spec.replicas` active pods of the template, adopts matching
 * orphans, releases pods that no longer match, and reports status. Creations and deletions are
 * remembered as expectations until the informer sees them, so a lagging cache never makes it
 * create or delete twice.
 */
const burst = 500;

export class ReplicaSetController {
  private readonly queue = new WorkQueue();
  private readonly sets: Informer;
  private readonly pods: Informer;
  /** ReplicaSet key -> pods it is still waiting to see created / deleted. */
  private readonly expecting = new Map<string, { adds: number; dels: Set<string>; at: number }>();

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, 'replicaset-controller', log);
    this.sets = informers.for('/apis/apps/v1/replicasets');
    this.pods = informers.for('/api/v1/pods');
    this.sets.on({ add: (rs) => this.queue.add(objectKey(rs)), update: (_, rs) => this.queue.add(objectKey(rs)), delete: (rs) => this.expecting.delete(objectKey(rs)) });
    const podChanged = (pod: Obj, kind: 'add' | 'update' | 'delete') => {
      const ref = controllerRef(pod);
      if (ref?.kind === 'ReplicaSet') {
        const key = `${pod.metadata.namespace}/${ref.name}`;
        const e = this.expecting.get(key);
        if (e && kind === 'add') e.adds = Math.max(0, e.adds - 1);
        if (e && (kind === 'delete' || pod.metadata.deletionTimestamp)) e.dels.delete(pod.metadata.name);
        this.queue.add(key);
      } else if (!ref && kind !== 'delete') {
        // An orphan: any ReplicaSet whose selector matches may adopt it.
        for (const rs of this.sets.list()) if (rs.metadata.namespace === pod.metadata.namespace && this.selects(rs, pod)) this.queue.add(objectKey(rs));
      }
    };
    this.pods.on({ add: (p) => podChanged(p, 'add'), update: (_, p) => podChanged(p, 'update'), delete: (p) => podChanged(p, 'delete') });
  }

  private selects(rs: Obj, pod: Obj): boolean {
    return selectorMatches(rs.spec?.selector, pod.metadata?.labels);
  }

  private satisfied(key: string): boolean {
    const e = this.expecting.get(key);
    return !e || (e.adds <= 0 && e.dels.size === 0) || Date.now() - e.at > 5 * 60_000;
  }

  private async sync(key: string): Promise<void> {
    const rs = this.sets.get(key);
    if (!rs || rs.metadata.deletionTimestamp) return;
    const ns = rs.metadata.namespace;
    const podsPath = resourcePath({ version: 'v1', plural: 'pods', namespace: ns });
    const mine: Obj[] = [];
    for (const pod of this.pods.listNamespace(ns)) {
      const ref = controllerRef(pod);
      if (ref?.uid === rs.metadata.uid) {
        if (this.selects(rs, pod)) mine.push(pod);
        else await this.patchOwners(pod, (pod.metadata.ownerReferences ?? []).filter((r: Obj) => r.uid !== rs.metadata.uid));
      } else if (!ref && isActivePod(pod) && this.selects(rs, pod)) {
        if (await this.patchOwners(pod, [...(pod.metadata.ownerReferences ?? []), ownerReferenceTo(rs, 'apps/v1', 'ReplicaSet')])) mine.push(pod);
      }
    }
    const active = mine.filter(isActivePod);
    const want = rs.spec?.replicas ?? 1;
    if (this.satisfied(key)) {
      const diff = want - active.length;
      if (diff > 0) await this.createPods(rs, key, podsPath, Math.min(diff, burst));
      else if (diff < 0) await this.deletePods(key, podsPath, active, -diff);
    }
    await this.updateStatus(rs, mine);
  }

  private async patchOwners(pod: Obj, refs: Obj[]): Promise<boolean> {
    try {
      await this.client.patch(resourcePath({ version: 'v1', plural: 'pods', namespace: pod.metadata.namespace, name: pod.metadata.name }), {
        metadata: { ownerReferences: refs.length ? refs : null, resourceVersion: pod.metadata.resourceVersion },
      });
      return true;
    } catch (err) {
      if (isCode(err, 'Conflict') || isCode(err, 'NotFound')) return false;
      throw err;
    }
  }

  private async createPods(rs: Obj, key: string, podsPath: string, n: number): Promise<void> {
    const tpl = rs.spec.template ?? {};
    this.expecting.set(key, { adds: n, dels: new Set(), at: Date.now() });
    // Slow start, like upstream: 1, 2, 4, … so a failing template costs few calls.
    let done = 0;
    for (let batch = 1; done < n; batch *= 2) {
      const size = Math.min(batch, n - done);
      const results = await Promise.allSettled(
        Array.from({ length: size }, () =>
          this.client.create(podsPath, {
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { generateName: `${rs.metadata.name}-`, namespace: rs.metadata.namespace, labels: tpl.metadata?.labels, annotations: tpl.metadata?.annotations, ownerReferences: [ownerReferenceTo(rs, 'apps/v1', 'ReplicaSet')] },
            spec: tpl.spec,
          }),
        ),
      );
      done += size;
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length) {
        const e = this.expecting.get(key);
        if (e) e.adds = Math.max(0, e.adds - failed.length - (n - done));
        await this.event(rs, 'Warning', 'FailedCreate', `Error creating: ${(failed[0] as PromiseRejectedResult).reason?.message}`);
        throw (failed[0] as PromiseRejectedResult).reason;
      }
      await Promise.all(results.map((r) => (r.status === 'fulfilled' ? this.event(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${r.value.metadata.name}`) : undefined)));
    }
  }

  /** Deletes the n least valuable pods: unscheduled, then pending, then not ready, then the newest. */
  private async deletePods(key: string, podsPath: string, active: Obj[], n: number): Promise<void> {
    const rank = (p: Obj) => [p.spec?.nodeName ? 1 : 0, p.status?.phase === 'Running' ? 2 : p.status?.phase === 'Pending' ? 0 : 1, isPodReady(p) ? 1 : 0, -Date.parse(p.metadata.creationTimestamp)];
    const victims = [...active]
      .sort((a, b) => {
        const ra = rank(a);
        const rb = rank(b);
        for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i] - rb[i];
        return 0;
      })
      .slice(0, n);
    this.expecting.set(key, { adds: 0, dels: new Set(victims.map((v) => v.metadata.name)), at: Date.now() });
    const rs = this.sets.get(key)!;
    await Promise.all(
      victims.map(async (v) => {
        try {
          await this.client.delete(`${podsPath}/${v.metadata.name}`);
          await this.event(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${v.metadata.name}`);
        } catch (err) {
          this.expecting.get(key)?.dels.delete(v.metadata.name);
          if (!isCode(err, 'NotFound')) throw err;
        }
      }),
    );
  }

  private async updateStatus(rs: Obj, pods: Obj[]): Promise<void> {
    const active = pods.filter(isActivePod);
    const tplLabels = rs.spec?.template?.metadata?.labels ?? {};
    const status = {
      replicas: active.length,
      fullyLabeledReplicas: active.filter((p) => Object.entries(tplLabels).every(([k, v]) => p.metadata.labels?.[k] === v)).length,
      readyReplicas: active.filter(isPodReady).length,
      availableReplicas: active.filter((p) => isPodAvailable(p, rs.spec?.minReadySeconds ?? 0)).length,
      observedGeneration: rs.metadata.generation,
    };
    const cur = rs.status ?? {};
    if ((Object.keys(status) as (keyof typeof status)[]).every((k) => (cur[k] ?? 0) === status[k])) return;
    try {
      await this.client.update(resourcePath({ group: 'apps', version: 'v1', plural: 'replicasets', namespace: rs.metadata.namespace, name: rs.metadata.name, subresource: 'status' }), {
        ...rs,
        status: { ...cur, ...status },
      });
    } catch (err) {
      // A newer version is on its way through the informer; it brings another sync.
      if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
    }
    const minReady = rs.spec?.minReadySeconds ?? 0;
    if (minReady && status.readyReplicas > status.availableReplicas) this.queue.addAfter(objectKey(rs), minReady * 1000);
  }

  private async event(obj: Obj, type: EventType, reason: string, message: string): Promise<void> {
    this.events.record(obj, 'apps/v1', 'ReplicaSet', type, reason, message);
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.sets.synced, this.pods.synced]);
    await this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('replicaset sync failed', { replicaset: key, err }));
  }
}
