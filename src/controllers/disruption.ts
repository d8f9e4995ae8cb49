import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controllerRef, isPodReady, selectorMatches } from './owner.js';

/**
 * Disruption controller: keeps each PodDisruptionBudget's status — how many matching pods are
 * expected (the replicas of their controllers, as upstream takes from the scale), how many must
 * stay healthy (minAvailable, or expected minus maxUnavailable; percentages of expected), how many
 * are healthy, and so how many disruptions are allowed. Evictions it has not seen reflected yet
 * (status.disruptedPods) count as unhealthy for two minutes.
 */
const timeoutMs = 2 * 60_000;

function resolve(v: unknown, expected: number, roundUp: boolean): number {
  if (typeof v === 'number') return v;
  const m = String(v).match(/^(\d+)%$/);
  if (!m) return Number(v) || 0;
  const x = (Number(m[1]) * expected) / 100;
  return roundUp ? Math.ceil(x) : Math.floor(x);
}

export class DisruptionController {
  private readonly queue = new WorkQueue();
  private readonly pdbs: Informer;
  private readonly pods: Informer;
  private readonly owners: Map<string, Informer>;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.pdbs = informers.for('/apis/policy/v1/poddisruptionbudgets');
    this.pods = informers.for('/api/v1/pods');
    this.owners = new Map([
      ['ReplicaSet', informers.for('/apis/apps/v1/replicasets')],
      ['StatefulSet', informers.for('/apis/apps/v1/statefulsets')],
    ]);
    this.pdbs.on({ add: (p) => this.queue.add(objectKey(p)), update: (_, p) => this.queue.add(objectKey(p)) });
    const podChanged = (pod: Obj) => {
      for (const pdb of this.pdbs.list()) if (pdb.metadata.namespace === pod.metadata.namespace && this.selects(pdb, pod)) this.queue.add(objectKey(pdb));
    };
    this.pods.on({ add: podChanged, update: (_, p) => podChanged(p), delete: podChanged });
  }

  private selects(pdb: Obj, pod: Obj): boolean {
    return selectorMatches(pdb.spec?.selector, pod.metadata?.labels);
  }

  private async sync(key: string): Promise<void> {
    const pdb = this.pdbs.get(key);
    if (!pdb || pdb.metadata.deletionTimestamp) return;
    const ns = pdb.metadata.namespace;
    const pods = this.pods.listNamespace(ns).filter((p) => this.selects(pdb, p));
    // Expected pods: the replicas of the controllers owning them; pods without one count themselves.
    const controllers = new Map<string, number>();
    let unowned = 0;
    for (const p of pods) {
      const ref = controllerRef(p);
      const owner = ref && this.owners.get(ref.kind)?.get(`${ns}/${ref.name}`);
      if (owner) controllers.set(owner.metadata.uid, owner.spec?.replicas ?? 1);
      else unowned++;
    }
    const expected = [...controllers.values()].reduce((a, b) => a + b, 0) + unowned;
    const now = Date.now();
    const disrupted: Record<string, string> = {};
    for (const [name, at] of Object.entries((pdb.status?.disruptedPods ?? {}) as Record<string, string>)) {
      const pod = pods.find((p) => p.metadata.name === name);
      if (pod && !pod.metadata.deletionTimestamp && Date.parse(at) + timeoutMs > now) disrupted[name] = at;
    }
    const healthy = pods.filter((p) => !p.metadata.deletionTimestamp && isPodReady(p) && !disrupted[p.metadata.name]).length;
    const spec = pdb.spec ?? {};
    const desired = spec.maxUnavailable !== undefined && spec.maxUnavailable !== null ? Math.max(0, expected - resolve(spec.maxUnavailable, expected, false)) : resolve(spec.minAvailable ?? 1, expected, true);
    const allowed = Math.max(0, healthy - desired);
    const stamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const prev = (pdb.status?.conditions ?? []).find((c: Obj) => c.type === 'DisruptionAllowed');
    const st = allowed > 0 ? 'True' : 'False';
    const status = {
      observedGeneration: pdb.metadata.generation,
      disruptedPods: Object.keys(disrupted).length ? disrupted : undefined,
      disruptionsAllowed: allowed,
      currentHealthy: healthy,
      desiredHealthy: desired,
      expectedPods: expected,
      conditions: [
        prev?.status === st
          ? prev
          : { type: 'DisruptionAllowed', status: st, reason: allowed > 0 ? 'SufficientPods' : 'InsufficientPods', message: '', observedGeneration: pdb.metadata.generation, lastTransitionTime: stamp },
      ],
    };
    if (Object.keys(disrupted).length) this.queue.addAfter(key, timeoutMs);
    if (JSON.stringify(status) === JSON.stringify(pdb.status ?? {})) return;
    await this.client.update(resourcePath({ group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', namespace: ns, name: pdb.metadata.name, subresource: 'status' }), { ...pdb, status }).catch((err) => {
      if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
      this.queue.addAfter(key, 100);
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.pdbs.synced, this.pods.synced, ...[...this.owners.values()].map((i) => i.synced)]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('disruption sync failed', { pdb: key, err }));
  }
}
