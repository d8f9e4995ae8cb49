import { EventRecorder } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controllerRef, isPodAvailable, isPodReady, ownerReferenceTo, requeueOwner } from './owner.js';
import { ensureRevision, REVISION_HASH, trimRevisions } from './revisions.js';

/**
 * StatefulSet controller: pods <name>-0 … <name>-(n-1) with stable names, hostnames and a
 * PersistentVolumeClaim per volumeClaimTemplate (<claim>-<pod>). OrderedReady creates them one
 * by one, each after the previous is Running and Ready, and removes them from the highest
 * ordinal down, one at a time; Parallel does both at once. RollingUpdate replaces pods at or
 * above the partition from the highest ordinal down, one Ready pod at a time. PVCs follow
 * persistentVolumeClaimRetentionPolicy (Retain, or Delete when the set is deleted or scaled down).
 */
const podName = (sts: Obj, i: number) => `${sts.metadata.name}-${i}`;
const ordinalOf = (sts: Obj, pod: Obj) => {
  const m = String(pod.metadata.name).match(new RegExp(`^${sts.metadata.name.replace(/[.]/g, '\\.')}-(\\d+)$`));
  return m ? Number(m[1]) : -1;
};

export class StatefulSetController {
  private readonly queue = new WorkQueue();
  private readonly sets: Informer;
  private readonly pods: Informer;
  private readonly revisions: Informer;

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, 'statefulset-controller', log);
    this.sets = informers.for('/apis/apps/v1/statefulsets');
    this.pods = informers.for('/api/v1/pods');
    this.revisions = informers.for('/apis/apps/v1/controllerrevisions');
    this.sets.on({ add: (s) => this.queue.add(objectKey(s)), update: (_, s) => this.queue.add(objectKey(s)) });
    this.pods.on(requeueOwner('StatefulSet', this.queue));
  }

  private path(ns: string, plural: string, name?: string): string {
    return resourcePath({ version: 'v1', plural, namespace: ns, name });
  }

  private async event(sts: Obj, reason: string, message: string): Promise<void> {
    this.events.record(sts, 'apps/v1', 'StatefulSet', 'Normal', reason, message);
  }

  private async ensureClaims(sts: Obj, name: string): Promise<void> {
    for (const t of sts.spec.volumeClaimTemplates ?? []) {
      const claim = `${t.metadata.name}-${name}`;
      const whenDeleted = sts.spec.persistentVolumeClaimRetentionPolicy?.whenDeleted === 'Delete';
      try {
        await this.client.create(this.path(sts.metadata.namespace, 'persistentvolumeclaims'), {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: {
            name: claim,
            namespace: sts.metadata.namespace,
            labels: { ...(sts.spec.selector?.matchLabels ?? {}), ...(t.metadata.labels ?? {}) },
            // Deleted with the set only when the policy says so: the garbage collector follows this reference.
            ...(whenDeleted ? { ownerReferences: [{ ...ownerReferenceTo(sts, 'apps/v1', 'StatefulSet'), controller: false }] } : {}),
          },
          spec: t.spec,
        });
        await this.event(sts, 'SuccessfulCreate', `create Claim ${claim} Pod ${name} in StatefulSet ${sts.metadata.name} success`);
      } catch (err) {
        if (!isCode(err, 'AlreadyExists')) throw err;
      }
    }
  }

  private async createPod(sts: Obj, i: number, hash: string): Promise<void> {
    const name = podName(sts, i);
    await this.ensureClaims(sts, name);
    const tpl = structuredClone(sts.spec.template ?? {});
    const spec = tpl.spec ?? {};
    spec.hostname = name;
    if (sts.spec.serviceName) spec.subdomain = sts.spec.serviceName;
    spec.volumes = [
      ...(spec.volumes ?? []).filter((v: Obj) => !(sts.spec.volumeClaimTemplates ?? []).some((t: Obj) => t.metadata.name === v.name)),
      ...(sts.spec.volumeClaimTemplates ?? []).map((t: Obj) => ({ name: t.metadata.name, persistentVolumeClaim: { claimName: `${t.metadata.name}-${name}` } })),
    ];
    if (!spec.volumes.length) delete spec.volumes;
    await this.client.create(this.path(sts.metadata.namespace, 'pods'), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: sts.metadata.namespace,
        labels: { ...(tpl.metadata?.labels ?? {}), [REVISION_HASH]: hash, 'statefulset.kubernetes.io/pod-name': name, 'apps.kubernetes.io/pod-index': String(i) },
        annotations: tpl.metadata?.annotations,
        ownerReferences: [ownerReferenceTo(sts, 'apps/v1', 'StatefulSet')],
      },
      spec,
    });
    await this.event(sts, 'SuccessfulCreate', `create Pod ${name} in StatefulSet ${sts.metadata.name} successful`);
  }

  private async deletePod(sts: Obj, pod: Obj, scaledDown: boolean): Promise<void> {
    await this.client.delete(this.path(sts.metadata.namespace, 'pods', pod.metadata.name)).catch((err) => {
      if (!isCode(err, 'NotFound')) throw err;
    });
    await this.event(sts, 'SuccessfulDelete', `delete Pod ${pod.metadata.name} in StatefulSet ${sts.metadata.name} successful`);
    if (scaledDown && sts.spec.persistentVolumeClaimRetentionPolicy?.whenScaled === 'Delete') {
      for (const t of sts.spec.volumeClaimTemplates ?? []) {
        await this.client.delete(this.path(sts.metadata.namespace, 'persistentvolumeclaims', `${t.metadata.name}-${pod.metadata.name}`)).catch((err) => {
          if (!isCode(err, 'NotFound')) throw err;
        });
      }
    }
  }

  private async sync(key: string): Promise<void> {
    const sts = this.sets.get(key);
    if (!sts || sts.metadata.deletionTimestamp) return;
    const ns = sts.metadata.namespace;
    const revisions = this.revisions.listNamespace(ns).filter((r) => controllerRef(r)?.uid === sts.metadata.uid);
    const update = await ensureRevision(this.client, sts, 'apps/v1', 'StatefulSet', sts.spec.template, revisions);
    const replicas = sts.spec.replicas ?? 1;
    const parallel = sts.spec.podManagementPolicy === 'Parallel';
    const pods = new Map<number, Obj>();
    for (const p of this.pods.listNamespace(ns)) if (controllerRef(p)?.uid === sts.metadata.uid) pods.set(ordinalOf(sts, p), p);
    const healthy = (p: Obj | undefined) => !!p && !p.metadata.deletionTimestamp && p.status?.phase === 'Running' && isPodReady(p);
    // Failed pods are replaced.
    for (const [, p] of pods) if (p.status?.phase === 'Failed' && !p.metadata.deletionTimestamp) await this.deletePod(sts, p, false);
    // Scale up: missing ordinals below replicas.
    for (let i = 0; i < replicas; i++) {
      const p = pods.get(i);
      if (!p) {
        await this.createPod(sts, i, update.hash);
        if (!parallel) break;
        continue;
      }
      if (!parallel && !healthy(p)) break;
    }
    // Scale down: ordinals at or above replicas, highest first.
    const extra = [...pods.entries()].filter(([i]) => i >= replicas).sort((a, b) => b[0] - a[0]);
    if (extra.length) {
      const waiting = extra.some(([, p]) => p.metadata.deletionTimestamp);
      if (parallel) for (const [, p] of extra) if (!p.metadata.deletionTimestamp) await this.deletePod(sts, p, true);
      if (!parallel && !waiting && [...pods.entries()].filter(([i]) => i < replicas).every(([, p]) => healthy(p))) await this.deletePod(sts, extra[0][1], true);
    } else if ((sts.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
      // Rolling update from the highest ordinal down to the partition, one at a time, all others Ready first.
      const partition = sts.spec.updateStrategy?.rollingUpdate?.partition ?? 0;
      const inRange = [...pods.entries()].filter(([i]) => i < replicas);
      if (inRange.length === replicas && inRange.every(([, p]) => healthy(p))) {
        const stale = inRange.filter(([i, p]) => i >= partition && p.metadata.labels?.[REVISION_HASH] !== update.hash).sort((a, b) => b[0] - a[0]);
        if (stale.length) await this.deletePod(sts, stale[0][1], false);
      }
    }
    const inUse = new Set<string>([update.hash, ...[...pods.values()].map((p) => p.metadata.labels?.[REVISION_HASH])]);
    await trimRevisions(this.client, revisions, inUse, sts.spec.revisionHistoryLimit ?? 10);
    const live = [...pods.entries()].filter(([i, p]) => i < replicas && !p.metadata.deletionTimestamp).map(([, p]) => p);
    const updated = live.filter((p) => p.metadata.labels?.[REVISION_HASH] === update.hash).length;
    const currentHash = updated === replicas ? update.hash : (sts.status?.currentRevision?.split('-').pop() ?? update.hash);
    const status = {
      ...(sts.status ?? {}),
      observedGeneration: sts.metadata.generation,
      replicas: live.length,
      readyReplicas: live.filter(isPodReady).length,
      availableReplicas: live.filter((p) => isPodAvailable(p, sts.spec.minReadySeconds ?? 0)).length,
      currentReplicas: live.filter((p) => p.metadata.labels?.[REVISION_HASH] === currentHash).length,
      updatedReplicas: updated,
      currentRevision: `${sts.metadata.name}-${currentHash}`,
      updateRevision: update.name,
    };
    if (JSON.stringify(status) !== JSON.stringify(sts.status ?? {})) {
      await this.client.update(resourcePath({ group: 'apps', version: 'v1', plural: 'statefulsets', namespace: ns, name: sts.metadata.name, subresource: 'status' }), { ...sts, status }).catch((err) => {
        if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
        this.queue.addAfter(key, 100);
      });
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.sets.synced, this.pods.synced, this.revisions.synced]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('statefulset sync failed', { statefulset: key, err }));
  }
}
