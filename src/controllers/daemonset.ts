import { nodeMatchesPod, untoleratedTaint } from '../api/node-match.js';
import { EventRecorder } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controllerRef, isActivePod, isPodAvailable, isPodReady, ownerReferenceTo, requeueOwner } from './owner.js';
import { ensureRevision, REVISION_HASH, trimRevisions } from './revisions.js';

/**
 * DaemonSet controller: one pod on every node the template's node selector, affinity and
 * tolerations admit, pinned there by node affinity on the node's name (the scheduler binds it);
 * none elsewhere. RollingUpdate replaces old-revision pods at most maxUnavailable at a time;
 * OnDelete leaves them until deleted. History is kept in ControllerRevisions.
 */
const defaultTolerations = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
];

export class DaemonSetController {
  private readonly queue = new WorkQueue();
  private readonly sets: Informer;
  private readonly nodes: Informer;
  private readonly pods: Informer;
  private readonly revisions: Informer;

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, 'daemonset-controller', log);
    this.sets = informers.for('/apis/apps/v1/daemonsets');
    this.nodes = informers.for('/api/v1/nodes');
    this.pods = informers.for('/api/v1/pods');
    this.revisions = informers.for('/apis/apps/v1/controllerrevisions');
    const all = () => {
      for (const ds of this.sets.list()) this.queue.add(objectKey(ds));
    };
    this.sets.on({ add: (d) => this.queue.add(objectKey(d)), update: (_, d) => this.queue.add(objectKey(d)) });
    this.nodes.on({ add: all, update: all, delete: all });
    this.pods.on(requeueOwner('DaemonSet', this.queue));
  }

  private podTemplateFor(ds: Obj): Obj {
    const spec = structuredClone(ds.spec.template?.spec ?? {});
    const have = (spec.tolerations ?? []) as Obj[];
    spec.tolerations = [...have, ...defaultTolerations.filter((t) => !have.some((h) => h.key === t.key && h.effect === t.effect))];
    return spec;
  }

  private async sync(key: string): Promise<void> {
    const ds = this.sets.get(key);
    if (!ds || ds.metadata.deletionTimestamp) return;
    const ns = ds.metadata.namespace;
    const podsPath = resourcePath({ version: 'v1', plural: 'pods', namespace: ns });
    const revisions = this.revisions.listNamespace(ns).filter((r) => controllerRef(r)?.uid === ds.metadata.uid);
    const rev = await ensureRevision(this.client, ds, 'apps/v1', 'DaemonSet', ds.spec.template, revisions);
    const mine = this.pods.listNamespace(ns).filter((p) => controllerRef(p)?.uid === ds.metadata.uid && isActivePod(p));
    const byNode = new Map<string, Obj[]>();
    for (const p of mine) {
      const node = p.spec?.nodeName ?? p.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms?.[0]?.matchFields?.[0]?.values?.[0];
      if (!byNode.has(node)) byNode.set(node, []);
      byNode.get(node)!.push(p);
    }
    const podSpec = this.podTemplateFor(ds);
    const eligible = this.nodes.list().filter((n) => nodeMatchesPod(podSpec, n) && !untoleratedTaint(podSpec, n));
    const eligibleNames = new Set(eligible.map((n) => n.metadata.name));
    const toCreate: string[] = [];
    const toDelete: Obj[] = [];
    for (const n of eligible) {
      const pods = byNode.get(n.metadata.name) ?? [];
      if (!pods.length) toCreate.push(n.metadata.name);
      else toDelete.push(...pods.slice(1));
    }
    for (const [node, pods] of byNode) if (!eligibleNames.has(node)) toDelete.push(...pods);
    // Rolling update: old-revision pods go, at most maxUnavailable at a time counting the unavailable.
    if ((ds.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
      const maxUnavailableRaw = ds.spec.updateStrategy?.rollingUpdate?.maxUnavailable ?? 1;
      const maxUnavailable = typeof maxUnavailableRaw === 'number' ? maxUnavailableRaw : Math.max(1, Math.floor((Number.parseInt(maxUnavailableRaw, 10) * eligible.length) / 100));
      const current = eligible.flatMap((n) => (byNode.get(n.metadata.name) ?? []).slice(0, 1));
      const unavailable = current.filter((p) => !isPodAvailable(p, ds.spec.minReadySeconds ?? 0)).length + toCreate.length;
      const old = current.filter((p) => p.metadata.labels?.[REVISION_HASH] !== rev.hash && !toDelete.includes(p));
      const oldUnavailable = old.filter((p) => !isPodAvailable(p, ds.spec.minReadySeconds ?? 0));
      const budget = Math.max(0, maxUnavailable - unavailable);
      toDelete.push(...oldUnavailable, ...old.filter((p) => !oldUnavailable.includes(p)).slice(0, budget));
    }
    const tpl = ds.spec.template ?? {};
    await Promise.all(
      toCreate.map(async (node) => {
        const spec = structuredClone(podSpec);
        spec.affinity = {
          ...(spec.affinity ?? {}),
          nodeAffinity: { ...(spec.affinity?.nodeAffinity ?? {}), requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node] }] }] } },
        };
        const pod = await this.client.create(podsPath, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { generateName: `${ds.metadata.name}-`, namespace: ns, labels: { ...(tpl.metadata?.labels ?? {}), [REVISION_HASH]: rev.hash }, annotations: tpl.metadata?.annotations, ownerReferences: [ownerReferenceTo(ds, 'apps/v1', 'DaemonSet')] },
          spec,
        });
        this.events.record(ds, 'apps/v1', 'DaemonSet', 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`);
      }),
    );
    await Promise.all(
      [...new Set(toDelete)].map((p) =>
        this.client.delete(`${podsPath}/${p.metadata.name}`).then(
          () => this.events.record(ds, 'apps/v1', 'DaemonSet', 'Normal', 'SuccessfulDelete', `Deleted pod: ${p.metadata.name}`),
          (err) => {
            if (!isCode(err, 'NotFound')) throw err;
          },
        ),
      ),
    );
    await trimRevisions(this.client, revisions, new Set([rev.hash, ...mine.map((p) => p.metadata.labels?.[REVISION_HASH])]), ds.spec.revisionHistoryLimit ?? 10);
    const scheduled = eligible.filter((n) => (byNode.get(n.metadata.name) ?? []).length);
    const onNodes = scheduled.map((n) => byNode.get(n.metadata.name)![0]);
    const status = {
      ...(ds.status ?? {}),
      desiredNumberScheduled: eligible.length,
      currentNumberScheduled: scheduled.length,
      numberMisscheduled: [...byNode.keys()].filter((n) => !eligibleNames.has(n)).length,
      numberReady: onNodes.filter(isPodReady).length,
      updatedNumberScheduled: onNodes.filter((p) => p.metadata.labels?.[REVISION_HASH] === rev.hash).length,
      numberAvailable: onNodes.filter((p) => isPodAvailable(p, ds.spec.minReadySeconds ?? 0)).length,
      numberUnavailable: eligible.length - onNodes.filter((p) => isPodAvailable(p, ds.spec.minReadySeconds ?? 0)).length,
      observedGeneration: ds.metadata.generation,
    };
    if (JSON.stringify(status) !== JSON.stringify(ds.status ?? {})) {
      await this.client.update(resourcePath({ group: 'apps', version: 'v1', plural: 'daemonsets', namespace: ns, name: ds.metadata.name, subresource: 'status' }), { ...ds, status }).catch((err) => {
        if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
        this.queue.addAfter(key, 100);
      });
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.sets.synced, this.nodes.synced, this.pods.synced, this.revisions.synced]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('daemonset sync failed', { daemonset: key, err }));
  }
}
