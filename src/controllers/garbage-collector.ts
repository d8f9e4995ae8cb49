import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Garbage collector over ownerReferences, for the workload kinds:
 * - background: a dependent whose owners are all gone is deleted;
 * - foreground: an owner marked foregroundDeletion loses its dependents first (they are deleted
 *   in foreground too), then its finalizer;
 * - orphan: an owner marked orphan has its reference removed from every dependent, then its
 *   finalizer.
 * An owner missing from the cache is confirmed with a live read before anything is deleted.
 */
export interface Kind {
  apiVersion: string;
  kind: string;
  path: string;
}

/** The kinds a cluster's collector watches, as owners and as dependents. */
export const workloadKinds: Kind[] = [
  { apiVersion: 'apps/v1', kind: 'Deployment', path: '/apis/apps/v1/deployments' },
  { apiVersion: 'apps/v1', kind: 'ReplicaSet', path: '/apis/apps/v1/replicasets' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet', path: '/apis/apps/v1/statefulsets' },
  { apiVersion: 'apps/v1', kind: 'DaemonSet', path: '/apis/apps/v1/daemonsets' },
  { apiVersion: 'apps/v1', kind: 'ControllerRevision', path: '/apis/apps/v1/controllerrevisions' },
  { apiVersion: 'batch/v1', kind: 'Job', path: '/apis/batch/v1/jobs' },
  { apiVersion: 'batch/v1', kind: 'CronJob', path: '/apis/batch/v1/cronjobs' },
  { apiVersion: 'v1', kind: 'Pod', path: '/api/v1/pods' },
  { apiVersion: 'v1', kind: 'Service', path: '/api/v1/services' },
  { apiVersion: 'v1', kind: 'ConfigMap', path: '/api/v1/configmaps' },
  { apiVersion: 'v1', kind: 'Secret', path: '/api/v1/secrets' },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices' },
];

const itemPath = (k: Kind, ns: string | undefined, name: string) => {
  const [group, version] = k.apiVersion.includes('/') ? k.apiVersion.split('/') : ['', k.apiVersion];
  return resourcePath({ group, version, plural: k.path.split('/').pop()!, namespace: ns, name });
};

export class GarbageCollector {
  /** Keys: "<kind>|<namespace>/<name>". */
  private readonly queue = new WorkQueue(50, 10_000);
  private readonly informers = new Map<string, Informer>();
  private readonly byUid = new Map<string, { kind: Kind; obj: Obj }>();
  /** Owner uid -> dependent keys. */
  private readonly dependents = new Map<string, Set<string>>();

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
    private readonly kinds: Kind[] = workloadKinds,
  ) {
    for (const kind of kinds) {
      const inf = informers.for(kind.path);
      this.informers.set(kind.kind, inf);
      const seen = (obj: Obj) => {
        const key = `${kind.kind}|${objectKey(obj)}`;
        this.byUid.set(obj.metadata.uid, { kind, obj });
        for (const ref of obj.metadata.ownerReferences ?? []) {
          const set = this.dependents.get(ref.uid) ?? new Set();
          set.add(key);
          this.dependents.set(ref.uid, set);
        }
        if (obj.metadata.ownerReferences?.length || obj.metadata.deletionTimestamp) this.queue.add(key);
      };
      inf.on({
        add: seen,
        update: (_, o) => seen(o),
        delete: (obj) => {
          this.byUid.delete(obj.metadata.uid);
          // Its dependents may now be garbage; an owner waiting in foreground may be done.
          for (const dep of this.dependents.get(obj.metadata.uid) ?? []) this.queue.add(dep);
          this.dependents.delete(obj.metadata.uid);
          for (const ref of obj.metadata.ownerReferences ?? []) {
            const owner = this.byUid.get(ref.uid);
            if (owner) this.queue.add(`${owner.kind.kind}|${objectKey(owner.obj)}`);
          }
        },
      });
    }
  }

  private lookup(key: string): { kind: Kind; obj: Obj } | undefined {
    const [kindName, objKey] = key.split('|');
    const obj = this.informers.get(kindName)?.get(objKey);
    const kind = this.kinds.find((k) => k.kind === kindName)!;
    return obj ? { kind, obj } : undefined;
  }

  /** Whether the owner exists: the cache first, then (to be sure before deleting) the server. */
  private async ownerExists(ref: Obj, ns: string): Promise<boolean> {
    const cached = this.byUid.get(ref.uid);
    if (cached) return true;
    const kind = this.kinds.find((k) => k.kind === ref.kind && k.apiVersion === ref.apiVersion);
    if (!kind) return true; // an owner kind we do not track: never collect on a guess
    const namespaced = kind.kind !== 'Node';
    try {
      const live = await this.client.get(itemPath(kind, namespaced ? ns : undefined, ref.name));
      return live.metadata.uid === ref.uid;
    } catch (err) {
      if (isCode(err, 'NotFound')) return false;
      throw err;
    }
  }

  private async sync(key: string): Promise<void> {
    const found = this.lookup(key);
    if (!found) return;
    const { kind, obj } = found;
    const ns = obj.metadata.namespace;
    const path = itemPath(kind, ns, obj.metadata.name);
    const finalizers: string[] = obj.metadata.finalizers ?? [];
    if (obj.metadata.deletionTimestamp && finalizers.includes('orphan')) {
      for (const depKey of this.dependents.get(obj.metadata.uid) ?? []) {
        const dep = this.lookup(depKey);
        if (!dep) continue;
        const refs = (dep.obj.metadata.ownerReferences ?? []).filter((r: Obj) => r.uid !== obj.metadata.uid);
        await this.client.patch(itemPath(dep.kind, dep.obj.metadata.namespace, dep.obj.metadata.name), { metadata: { ownerReferences: refs.length ? refs : null } }).catch((err) => {
          if (!isCode(err, 'NotFound')) throw err;
        });
      }
      await this.removeFinalizer(path, obj, 'orphan');
      return;
    }
    if (obj.metadata.deletionTimestamp && finalizers.includes('foregroundDeletion')) {
      const deps = [...(this.dependents.get(obj.metadata.uid) ?? [])].map((k) => this.lookup(k)).filter((d) => d !== undefined);
      const blocking = deps.filter((d) => (d.obj.metadata.ownerReferences ?? []).some((r: Obj) => r.uid === obj.metadata.uid));
      for (const dep of blocking) {
        if (dep.obj.metadata.deletionTimestamp) continue;
        await this.client.delete(itemPath(dep.kind, dep.obj.metadata.namespace, dep.obj.metadata.name), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' }).catch((err) => {
          if (!isCode(err, 'NotFound')) throw err;
        });
      }
      if (!blocking.some((d) => (d.obj.metadata.ownerReferences ?? []).some((r: Obj) => r.uid === obj.metadata.uid && r.blockOwnerDeletion))) {
        await this.removeFinalizer(path, obj, 'foregroundDeletion');
      } else this.queue.addAfter(key, 500);
      return;
    }
    const refs: Obj[] = obj.metadata.ownerReferences ?? [];
    if (!refs.length || obj.metadata.deletionTimestamp) return;
    for (const ref of refs) if (await this.ownerExists(ref, ns)) return;
    this.log.info('collecting garbage', { kind: kind.kind, object: objectKey(obj) });
    await this.client.delete(path, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background', preconditions: { uid: obj.metadata.uid } }).catch((err) => {
      if (!isCode(err, 'NotFound') && !isCode(err, 'Conflict')) throw err;
    });
  }

  private async removeFinalizer(path: string, obj: Obj, finalizer: string): Promise<void> {
    const rest = (obj.metadata.finalizers ?? []).filter((f: string) => f !== finalizer);
    await this.client.patch(path, { metadata: { finalizers: rest.length ? rest : null, resourceVersion: obj.metadata.resourceVersion } }).catch((err) => {
      if (!isCode(err, 'NotFound') && !isCode(err, 'Conflict')) throw err;
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.synced));
    await this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('garbage collection failed', { object: key, err }));
  }
}
