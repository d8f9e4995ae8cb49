import { deepEqual } from '../api/object.js';
import { EventRecorder, type EventType } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controllerRef, isActivePod, ownerReferenceTo, selectorMatches } from './owner.js';
import { podTemplateHash } from './revisions.js';

/**
 * Deployment controller: one ReplicaSet per pod template (named by its pod-template-hash), the
 * newest scaled up and the others down as the strategy allows (RollingUpdate within maxSurge and
 * maxUnavailable, or Recreate), revisions in annotations (a rollback renumbers the old revision
 * as the newest), paused deployments left alone, history trimmed to revisionHistoryLimit, and the
 * status and conditions `kubectl rollout status` reads.
 */
const REVISION = 'deployment.kubernetes.io/revision';
const HASH = 'pod-template-hash';
const DESIRED = 'deployment.kubernetes.io/desired-replicas';
const MAX = 'deployment.kubernetes.io/max-replicas';

function withoutHash(template: Obj | undefined): Obj {
  const t = structuredClone(template ?? {});
  if (t.metadata?.labels) {
    delete t.metadata.labels[HASH];
    if (!Object.keys(t.metadata.labels).length) delete t.metadata.labels;
  }
  return t;
}

/** An int-or-percent against a total: surge rounds up, unavailability down (as upstream). */
function resolve(v: unknown, total: number, roundUp: boolean): number {
  if (typeof v === 'number') return v;
  const m = String(v ?? '0').match(/^(\d+)%$/);
  if (!m) return Number(v) || 0;
  const x = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

const revision = (rs: Obj) => Number(rs.metadata?.annotations?.[REVISION] ?? 0);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export class DeploymentController {
  private readonly queue = new WorkQueue();
  private readonly deployments: Informer;
  private readonly sets: Informer;
  private readonly pods: Informer;

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, 'deployment-controller', log);
    this.deployments = informers.for('/apis/apps/v1/deployments');
    this.sets = informers.for('/apis/apps/v1/replicasets');
    this.pods = informers.for('/api/v1/pods');
    const enqueue = (d: Obj) => this.queue.add(objectKey(d));
    this.deployments.on({ add: enqueue, update: (_, d) => enqueue(d) });
    const rsChanged = (rs: Obj) => {
      const ref = controllerRef(rs);
      if (ref?.kind === 'Deployment') this.queue.add(`${rs.metadata.namespace}/${ref.name}`);
      else if (!ref) for (const d of this.deployments.list()) if (d.metadata.namespace === rs.metadata.namespace && this.selects(d, rs)) enqueue(d);
    };
    this.sets.on({ add: rsChanged, update: (_, rs) => rsChanged(rs), delete: rsChanged });
    // Recreate waits for old pods to go: their deletion wakes the deployment.
    this.pods.on({
      delete: (pod) => {
        const rsRef = controllerRef(pod);
        const rs = rsRef && this.sets.get(`${pod.metadata.namespace}/${rsRef.name}`);
        const dRef = rs && controllerRef(rs);
        if (dRef?.kind === 'Deployment') this.queue.add(`${pod.metadata.namespace}/${dRef.name}`);
      },
    });
  }

  private selects(d: Obj, obj: Obj): boolean {
    return selectorMatches(d.spec?.selector, obj.metadata?.labels);
  }

  private rsPath(ns: string, name?: string, subresource?: string): string {
    return resourcePath({ group: 'apps', version: 'v1', plural: 'replicasets', namespace: ns, name, subresource });
  }

  private async event(d: Obj, type: EventType, reason: string, message: string): Promise<void> {
    this.events.record(d, 'apps/v1', 'Deployment', type, reason, message);
  }

  /** Sets a ReplicaSet's size, and the deployment size it was sized for in its annotations. */
  private async scale(d: Obj, rs: Obj, replicas: number): Promise<Obj> {
    const from = rs.spec?.replicas ?? 0;
    const annotations = { ...(rs.metadata.annotations ?? {}), [DESIRED]: String(d.spec.replicas), [MAX]: String(d.spec.replicas + this.surge(d)) };
    const stale = annotations[DESIRED] !== rs.metadata.annotations?.[DESIRED] || annotations[MAX] !== rs.metadata.annotations?.[MAX];
    if (from === replicas && !stale) return rs;
    const updated = await this.client.update(this.rsPath(rs.metadata.namespace, rs.metadata.name), { ...rs, metadata: { ...rs.metadata, annotations }, spec: { ...rs.spec, replicas } });
    if (from === replicas) return updated;
    await this.event(d, 'Normal', 'ScalingReplicaSet', replicas > from ? `Scaled up replica set ${rs.metadata.name} from ${from} to ${replicas}` : `Scaled down replica set ${rs.metadata.name} from ${from} to ${replicas}`);
    return updated;
  }

  private surge(d: Obj): number {
    if (d.spec?.strategy?.type === 'Recreate') return 0;
    return resolve(d.spec?.strategy?.rollingUpdate?.maxSurge ?? '25%', d.spec.replicas, true);
  }

  private unavailable(d: Obj): number {
    if (d.spec?.strategy?.type === 'Recreate') return 0;
    const u = resolve(d.spec?.strategy?.rollingUpdate?.maxUnavailable ?? '25%', d.spec.replicas, false);
    return u === 0 && this.surge(d) === 0 ? 1 : u;
  }

  private async sync(key: string): Promise<void> {
    const d = this.deployments.get(key);
    if (!d || d.metadata.deletionTimestamp) return;
    const ns = d.metadata.namespace;
    // The ReplicaSets this deployment controls, adopting matching orphans.
    let sets: Obj[] = [];
    for (const rs of this.sets.listNamespace(ns)) {
      if (rs.metadata.deletionTimestamp) continue;
      const ref = controllerRef(rs);
      if (ref?.uid === d.metadata.uid) sets.push(rs);
      else if (!ref && this.selects(d, rs)) {
        sets.push(await this.client.update(this.rsPath(ns, rs.metadata.name), { ...rs, metadata: { ...rs.metadata, ownerReferences: [...(rs.metadata.ownerReferences ?? []), ownerReferenceTo(d, 'apps/v1', 'Deployment')] } }));
      }
    }
    const template = withoutHash(d.spec.template);
    let newRS = sets.find((rs) => deepEqual(withoutHash(rs.spec?.template), template));
    const maxRevision = sets.reduce((m, rs) => Math.max(m, revision(rs)), 0);
    let progressed = false;
    let createdName = '';
    if (!d.spec.paused) {
      if (!newRS) {
        newRS = await this.createReplicaSet(d, maxRevision + 1);
        sets.push(newRS);
        progressed = true;
        createdName = newRS.metadata.name;
      } else if (revision(newRS) < maxRevision) {
        // A rollback to an old template: that ReplicaSet becomes the newest revision.
        newRS = await this.client.update(this.rsPath(ns, newRS.metadata.name), { ...newRS, metadata: { ...newRS.metadata, annotations: { ...newRS.metadata.annotations, [REVISION]: String(maxRevision + 1) } } });
        sets = sets.map((rs) => (rs.metadata.uid === newRS!.metadata.uid ? newRS! : rs));
        await this.event(d, 'Normal', 'DeploymentRollback', `Rolled back deployment "${d.metadata.name}" to revision ${revision(newRS)}`);
      }
    }
    const old = sets.filter((rs) => rs !== newRS);
    const active = sets.filter((rs) => (rs.spec?.replicas ?? 0) > 0);
    if (active.length > 1 && d.spec?.strategy?.type !== 'Recreate' && active.some((rs) => rs.metadata.annotations?.[DESIRED] !== String(d.spec.replicas))) {
      // Scaled in mid-rollout: every active ReplicaSet grows or shrinks in proportion.
      await this.scaleProportionally(d, active, newRS);
    } else if (newRS && !d.spec.paused) {
      progressed = (await this.rollout(d, newRS, old)) || progressed;
      newRS = this.sets.get(objectKey(newRS)) ?? newRS;
    } else if (d.spec.paused && newRS && (newRS.spec?.replicas ?? 0) !== d.spec.replicas && old.every((rs) => !rs.spec?.replicas)) {
      await this.scale(d, newRS, d.spec.replicas);
    }
    await this.cleanup(d, old);
    await this.updateStatus(d, newRS, sets, progressed, createdName);
  }

  private async createReplicaSet(d: Obj, rev: number): Promise<Obj> {
    const ns = d.metadata.namespace;
    for (let collisions = d.status?.collisionCount ?? 0; ; collisions++) {
      const hash = podTemplateHash(d.spec.template, collisions);
      const tpl = structuredClone(d.spec.template);
      tpl.metadata ??= {};
      tpl.metadata.labels = { ...(tpl.metadata.labels ?? {}), [HASH]: hash };
      const annotations = { ...(d.metadata.annotations ?? {}) };
      delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
      annotations[REVISION] = String(rev);
      annotations[DESIRED] = String(d.spec.replicas);
      annotations[MAX] = String(d.spec.replicas + this.surge(d));
      try {
        const rs = await this.client.create(this.rsPath(ns), {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          metadata: { name: `${d.metadata.name}-${hash}`, namespace: ns, labels: tpl.metadata.labels, annotations, ownerReferences: [ownerReferenceTo(d, 'apps/v1', 'Deployment')] },
          spec: {
            replicas: 0,
            minReadySeconds: d.spec.minReadySeconds ?? 0,
            selector: { ...d.spec.selector, matchLabels: { ...(d.spec.selector?.matchLabels ?? {}), [HASH]: hash } },
            template: tpl,
          },
        });
        await this.event(d, 'Normal', 'ScalingReplicaSet', `Created new replica set ${rs.metadata.name}`);
        return rs;
      } catch (err) {
        // A ReplicaSet of that name with another template: a hash collision; try the next count.
        if (!isCode(err, 'AlreadyExists') || collisions > 10) throw err;
      }
    }
  }

  /**
   * Upstream's proportional scaling: the change in allowed size (replicas + maxSurge) is shared
   * among the active ReplicaSets by their share of the size they were last sized for (the
   * max-replicas annotation), largest first (newest first among equals when growing, oldest
   * first when shrinking); what rounding leaves over goes to the largest.
   */
  private async scaleProportionally(d: Obj, active: Obj[], newRS: Obj | undefined): Promise<void> {
    const replicas = d.spec.replicas ?? 1;
    const allowed = replicas > 0 ? replicas + this.surge(d) : 0;
    const current = active.reduce((n, rs) => n + (rs.spec?.replicas ?? 0), 0);
    const toAdd = allowed - current;
    const newer = (a: Obj, b: Obj) => (a === newRS ? -1 : b === newRS ? 1 : revision(b) - revision(a));
    const sorted = [...active].sort((a, b) => (b.spec?.replicas ?? 0) - (a.spec?.replicas ?? 0) || (toAdd > 0 ? newer(a, b) : -newer(a, b)));
    const sizes = new Map<Obj, number>();
    let added = 0;
    for (const rs of sorted) {
      const size = rs.spec?.replicas ?? 0;
      let share = 0;
      if (toAdd !== 0) {
        const sizedFor = Number(rs.metadata.annotations?.[MAX]) || current;
        share = replicas === 0 ? -size : Math.round((size * allowed) / sizedFor) - size;
        share = toAdd > 0 ? Math.min(share, toAdd - added) : Math.max(share, toAdd - added);
      }
      sizes.set(rs, size + share);
      added += share;
    }
    if (sorted.length && toAdd !== added) sizes.set(sorted[0], Math.max(0, sizes.get(sorted[0])! + toAdd - added));
    for (const rs of sorted) await this.scale(d, rs, sizes.get(rs)!);
  }

  /** One step of the strategy. Resolves whether any ReplicaSet was scaled. */
  private async rollout(d: Obj, newRS: Obj, old: Obj[]): Promise<boolean> {
    const replicas = d.spec.replicas ?? 1;
    let changed = false;
    if (d.spec?.strategy?.type === 'Recreate') {
      for (const rs of old) {
        if (rs.spec?.replicas) {
          await this.scale(d, rs, 0);
          changed = true;
        }
      }
      const oldUids = new Set(old.map((rs) => rs.metadata.uid));
      const oldPodsLeft = this.pods.listNamespace(d.metadata.namespace).some((p) => oldUids.has(controllerRef(p)?.uid) && isActivePod(p));
      if (!changed && !oldPodsLeft && (newRS.spec?.replicas ?? 0) !== replicas) {
        await this.scale(d, newRS, replicas);
        changed = true;
      }
      return changed;
    }
    const all = [newRS, ...old];
    const total = all.reduce((s, rs) => s + (rs.spec?.replicas ?? 0), 0);
    const maxTotal = replicas + this.surge(d);
    const newReplicas = newRS.spec?.replicas ?? 0;
    if (newReplicas > replicas) {
      await this.scale(d, newRS, replicas);
      changed = true;
    } else if (newReplicas < replicas && total < maxTotal) {
      await this.scale(d, newRS, Math.min(replicas, newReplicas + (maxTotal - total)));
      changed = true;
    }
    const current = this.sets.get(objectKey(newRS)) ?? newRS;
    const minAvailable = replicas - this.unavailable(d);
    const allPods = all.reduce((s, rs) => s + (rs.spec?.replicas ?? 0), 0) + (changed ? Math.max(0, (current.spec?.replicas ?? 0) - newReplicas) : 0);
    const newUnavailable = Math.max(0, (current.spec?.replicas ?? 0) - (current.status?.availableReplicas ?? 0));
    // As upstream: scale old ReplicaSets down only within the room the availability budget leaves,
    // their unavailable pods first (they cost no availability), then the oldest ReplicaSets first.
    const room = allPods - minAvailable - newUnavailable;
    if (room <= 0) return changed;
    const oldestFirst = [...old].sort((a, b) => revision(a) - revision(b));
    const sizes = new Map(oldestFirst.map((rs) => [rs, rs.spec?.replicas ?? 0]));
    let cleaned = 0;
    for (const rs of oldestFirst) {
      const unhealthy = sizes.get(rs)! - (rs.status?.availableReplicas ?? 0);
      if (cleaned >= room) break;
      if (unhealthy <= 0) continue;
      const down = Math.min(room - cleaned, unhealthy);
      sizes.set(rs, sizes.get(rs)! - down);
      cleaned += down;
    }
    // A status may still count pods a ReplicaSet was just scaled below: no more available than wanted.
    const available = [current, ...old].reduce((n, rs) => n + Math.min(rs.spec?.replicas ?? 0, rs.status?.availableReplicas ?? 0), 0);
    let budget = Math.max(0, available - minAvailable);
    for (const rs of oldestFirst) {
      if (budget <= 0) break;
      const down = Math.min(sizes.get(rs)!, budget);
      sizes.set(rs, sizes.get(rs)! - down);
      budget -= down;
    }
    for (const rs of oldestFirst) {
      if (sizes.get(rs) === (rs.spec?.replicas ?? 0)) continue;
      await this.scale(d, rs, sizes.get(rs)!);
      changed = true;
    }
    return changed;
  }

  private async cleanup(d: Obj, old: Obj[]): Promise<void> {
    const limit = d.spec?.revisionHistoryLimit ?? 10;
    const idle = old.filter((rs) => !rs.spec?.replicas && !rs.status?.replicas).sort((a, b) => revision(a) - revision(b));
    for (const rs of idle.slice(0, Math.max(0, idle.length - limit))) {
      await this.client.delete(this.rsPath(rs.metadata.namespace, rs.metadata.name)).catch((err) => {
        if (!isCode(err, 'NotFound')) throw err;
      });
    }
  }

  private async updateStatus(d: Obj, newRS: Obj | undefined, sets: Obj[], progressed: boolean, createdName: string): Promise<void> {
    const replicas = d.spec.replicas ?? 1;
    const sum = (f: (rs: Obj) => number) => sets.reduce((s, rs) => s + f(this.sets.get(objectKey(rs)) ?? rs), 0);
    const fresh = newRS ? (this.sets.get(objectKey(newRS)) ?? newRS) : undefined;
    const status: Obj = {
      observedGeneration: d.metadata.generation,
      replicas: sum((rs) => rs.status?.replicas ?? 0),
      updatedReplicas: fresh?.status?.replicas ?? 0,
      readyReplicas: sum((rs) => rs.status?.readyReplicas ?? 0),
      availableReplicas: sum((rs) => rs.status?.availableReplicas ?? 0),
    };
    status.unavailableReplicas = Math.max(0, Math.max(replicas, status.replicas) - status.availableReplicas);
    if (d.status?.collisionCount) status.collisionCount = d.status.collisionCount;
    const conds: Obj[] = [...(d.status?.conditions ?? [])];
    const setCond = (type: string, st: string, reason: string, message: string, touch: boolean) => {
      const i = conds.findIndex((c) => c.type === type);
      const prev = conds[i];
      const c: Obj = { type, status: st, reason, message, lastUpdateTime: touch || !prev ? now() : prev.lastUpdateTime, lastTransitionTime: prev && prev.status === st ? prev.lastTransitionTime : now() };
      if (prev && prev.status === st && prev.reason === reason && prev.message === message && !touch) return;
      if (i >= 0) conds[i] = c;
      else conds.push(c);
    };
    const minAvailable = replicas - this.unavailable(d);
    if (status.availableReplicas >= minAvailable) setCond('Available', 'True', 'MinimumReplicasAvailable', 'Deployment has minimum availability.', false);
    else setCond('Available', 'False', 'MinimumReplicasUnavailable', 'Deployment does not have minimum availability.', false);
    const name = fresh?.metadata?.name ?? '';
    const complete = fresh && status.updatedReplicas === replicas && status.replicas === replicas && status.availableReplicas === replicas && (fresh.spec?.replicas ?? 0) === replicas;
    const progressing = conds.find((c) => c.type === 'Progressing');
    if (d.spec.paused) setCond('Progressing', 'Unknown', 'DeploymentPaused', 'Deployment is paused', false);
    else if (complete) setCond('Progressing', 'True', 'NewReplicaSetAvailable', `ReplicaSet "${name}" has successfully progressed.`, progressing?.reason !== 'NewReplicaSetAvailable');
    else if (createdName) setCond('Progressing', 'True', 'NewReplicaSetCreated', `Created new replica set "${createdName}"`, true);
    else if (progressed || (d.status && (d.status.updatedReplicas !== status.updatedReplicas || d.status.availableReplicas !== status.availableReplicas))) {
      setCond('Progressing', 'True', 'ReplicaSetUpdated', `ReplicaSet "${name}" is progressing.`, true);
    } else if (progressing?.status === 'True' && progressing.reason !== 'NewReplicaSetAvailable' && d.spec.progressDeadlineSeconds) {
      if (Date.parse(progressing.lastUpdateTime) + d.spec.progressDeadlineSeconds * 1000 < Date.now()) {
        setCond('Progressing', 'False', 'ProgressDeadlineExceeded', `ReplicaSet "${name}" has timed out progressing.`, true);
      } else this.queue.addAfter(objectKey(d), Date.parse(progressing.lastUpdateTime) + d.spec.progressDeadlineSeconds * 1000 - Date.now() + 100);
    }
    status.conditions = conds;
    const rev = fresh ? String(revision(fresh)) : d.metadata.annotations?.[REVISION];
    const revChanged = rev && d.metadata.annotations?.[REVISION] !== rev;
    const dPath = resourcePath({ group: 'apps', version: 'v1', plural: 'deployments', namespace: d.metadata.namespace, name: d.metadata.name });
    try {
      if (revChanged) {
        await this.client.patch(dPath, { metadata: { annotations: { [REVISION]: rev } } });
        return; // the update brings another sync, which writes the status
      }
      if (Object.keys(status).some((k) => !deepEqual(status[k], d.status?.[k]))) {
        await this.client.update(`${dPath}/status`, { ...d, status });
      }
    } catch (err) {
      if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.deployments.synced, this.sets.synced, this.pods.synced]);
    await this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('deployment sync failed', { deployment: key, err }));
  }
}
