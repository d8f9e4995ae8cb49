import { Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Garbage collector over ownerReferences:
 * - background: a dependent whose owners are all gone is deleted;
 * - foreground: an owner marked foregroundDeletion loses its dependents first (they are deleted
 *   in foreground too), then its finalizer;
 * - orphan: an owner marked orphan has its reference removed from every dependent, then its
 *   finalizer.
 * An owner missing from the cache is confirmed with a live read before anything is deleted.
 * Kinds are matched by group and kind, not version, as references name whichever version their
 * writer used. Custom resources are followed as their definitions become Established; an owner of
 * a kind the collector has never known is assumed to exist, so nothing is collected on a guess.
 */
export interface Kind {
  apiVersion: string;
  kind: string;
  /** The collection's path across namespaces, e.g. /apis/apps/v1/deployments. */
  path: string;
  namespaced: boolean;
}

const kindOf = (apiVersion: string, kind: string, plural: string, namespaced = true): Kind => ({
  apiVersion,
  kind,
  path: `${apiVersion.includes('/') ? '/apis' : '/api'}/${apiVersion}/${plural}`,
  namespaced,
});

/** The built-in kinds a cluster's collector follows, as owners and as dependents. */
export const builtinKinds: Kind[] = [
  kindOf('apps/v1', 'Deployment', 'deployments'),
  kindOf('apps/v1', 'ReplicaSet', 'replicasets'),
  kindOf('apps/v1', 'StatefulSet', 'statefulsets'),
  kindOf('apps/v1', 'DaemonSet', 'daemonsets'),
  kindOf('apps/v1', 'ControllerRevision', 'controllerrevisions'),
  kindOf('batch/v1', 'Job', 'jobs'),
  kindOf('batch/v1', 'CronJob', 'cronjobs'),
  kindOf('v1', 'Pod', 'pods'),
  kindOf('v1', 'Service', 'services'),
  kindOf('v1', 'ConfigMap', 'configmaps'),
  kindOf('v1', 'Secret', 'secrets'),
  kindOf('v1', 'ServiceAccount', 'serviceaccounts'),
  kindOf('v1', 'PersistentVolumeClaim', 'persistentvolumeclaims'),
  kindOf('v1', 'Node', 'nodes', false),
  kindOf('discovery.k8s.io/v1', 'EndpointSlice', 'endpointslices'),
  kindOf('networking.k8s.io/v1', 'Ingress', 'ingresses'),
  kindOf('networking.k8s.io/v1', 'NetworkPolicy', 'networkpolicies'),
  kindOf('policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets'),
  kindOf('autoscaling/v2', 'HorizontalPodAutoscaler', 'horizontalpodautoscalers'),
  kindOf('rbac.authorization.k8s.io/v1', 'Role', 'roles'),
  kindOf('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings'),
  kindOf('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', false),
  kindOf('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', false),
];

export interface CollectorOptions {
  /** The kinds followed from the start; the cluster's built-in set unless given. */
  kinds?: Kind[];
  /** Follow the custom resources of every Established CustomResourceDefinition (default true). */
  customResources?: boolean;
}

/** "group/Kind", the key under which a kind and references to it are matched. */
const groupKind = (apiVersion: string, kindName: string) => `${apiVersion.includes('/') ? apiVersion.split('/')[0] : ''}/${kindName}`;

const crdPath = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

/** The kind a definition serves, by its storage version (or first served one), once Established. */
function customKind(crd: Obj): Kind | undefined {
  const established = (crd.status?.conditions ?? []).some((c: Obj) => c.type === 'Established' && c.status === 'True');
  const versions: Obj[] = crd.spec?.versions ?? [];
  const version = versions.find((v) => v.storage && v.served) ?? versions.find((v) => v.served);
  if (!established || crd.metadata.deletionTimestamp || !version) return undefined;
  return kindOf(`${crd.spec.group}/${version.name}`, crd.spec.names.kind, crd.spec.names.plural, crd.spec.scope !== 'Cluster');
}

const itemPath = (k: Kind, ns: string | undefined, name: string) => {
  const [group, version] = k.apiVersion.includes('/') ? k.apiVersion.split('/') : ['', k.apiVersion];
  return resourcePath({ group, version, plural: k.path.split('/').pop()!, namespace: k.namespaced ? ns : undefined, name });
};

interface Followed {
  kind: Kind;
  informer: Informer;
  /** Stops a custom resource's informer when its definition goes; unset for built-in kinds. */
  stop?: AbortController;
}

export class GarbageCollector {
  /** Keys: "<group>/<Kind>|<namespace>/<name>". */
  private readonly queue = new WorkQueue(50, 10_000);
  /** By group/kind. A custom kind whose definition went stays known, without an informer. */
  private readonly followed = new Map<string, Followed>();
  private readonly known = new Map<string, Kind>();
  private readonly byUid = new Map<string, { kind: Kind; obj: Obj }>();
  /** Owner uid -> dependent keys. */
  private readonly dependents = new Map<string, Set<string>>();
  private signal?: AbortSignal;
  /** Custom kinds seen before run() gave a signal to run their informers under. */
  private readonly pending: Followed[] = [];

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
    options: CollectorOptions = {},
  ) {
    for (const k of options.kinds ?? builtinKinds) this.follow(k, informers.for(k.path));
    if (options.customResources ?? true) {
      informers.for(crdPath).on({
        add: (crd) => this.definitionChanged(crd),
        update: (_, crd) => this.definitionChanged(crd),
        delete: (crd) => this.unfollow(groupKind(crd.spec.group, crd.spec.names.kind)),
      });
    }
  }

  private definitionChanged(crd: Obj): void {
    const k = customKind(crd);
    const gk = groupKind(crd.spec.group, crd.spec.names.kind);
    if (!k) return;
    const current = this.followed.get(gk);
    if (current?.kind.path === k.path && current.kind.namespaced === k.namespaced) return;
    this.unfollow(gk);
    const f = this.follow(k, new Informer(this.client, k.path, this.log), new AbortController());
    if (this.signal) this.start(f, this.signal);
    else this.pending.push(f);
  }

  private start(f: Followed, signal: AbortSignal): void {
    const stop = f.stop!;
    signal.addEventListener('abort', () => stop.abort(), { once: true });
    void f.informer.run(stop.signal);
  }

  /** Stops following a custom kind; references to it are still checked against the server. */
  private unfollow(gk: string): void {
    const f = this.followed.get(gk);
    if (!f?.stop) return;
    f.stop.abort();
    this.followed.delete(gk);
  }

  private follow(k: Kind, informer: Informer, stop?: AbortController): Followed {
    const gk = groupKind(k.apiVersion, k.kind);
    const f: Followed = { kind: k, informer, stop };
    this.followed.set(gk, f);
    this.known.set(gk, k);
    const seen = (obj: Obj) => {
      if (this.followed.get(gk) !== f) return; // a stopped custom informer's late event
      const key = `${gk}|${objectKey(obj)}`;
      this.byUid.set(obj.metadata.uid, { kind: k, obj });
      for (const ref of obj.metadata.ownerReferences ?? []) {
        const set = this.dependents.get(ref.uid) ?? new Set();
        set.add(key);
        this.dependents.set(ref.uid, set);
      }
      if (obj.metadata.ownerReferences?.length || obj.metadata.deletionTimestamp) this.queue.add(key);
    };
    informer.on({
      add: seen,
      update: (_, o) => seen(o),
      delete: (obj) => {
        this.byUid.delete(obj.metadata.uid);
        // Its dependents may now be garbage; an owner waiting in foreground may be done.
        for (const dep of this.dependents.get(obj.metadata.uid) ?? []) this.queue.add(dep);
        this.dependents.delete(obj.metadata.uid);
        for (const ref of obj.metadata.ownerReferences ?? []) {
          const owner = this.byUid.get(ref.uid);
          if (owner) this.queue.add(`${groupKind(owner.kind.apiVersion, owner.kind.kind)}|${objectKey(owner.obj)}`);
        }
      },
    });
    return f;
  }

  private lookup(key: string): { kind: Kind; obj: Obj } | undefined {
    const bar = key.indexOf('|');
    const f = this.followed.get(key.slice(0, bar));
    const obj = f?.informer.get(key.slice(bar + 1));
    return f && obj ? { kind: f.kind, obj } : undefined;
  }

  /** Whether the owner exists: the cache first, then (to be sure before deleting) the server. */
  private async ownerExists(ref: Obj, ns: string): Promise<boolean> {
    if (this.byUid.has(ref.uid)) return true;
    const k = this.known.get(groupKind(ref.apiVersion ?? '', ref.kind ?? ''));
    if (!k) return true; // an owner kind we do not know: never collect on a guess
    try {
      const live = await this.client.get(itemPath(k, ns, ref.name));
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
    this.log.info('collecting garbage', { kind: `${kind.apiVersion}/${kind.kind}`, object: objectKey(obj) });
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
    this.signal = signal;
    for (const f of this.pending.splice(0)) this.start(f, signal);
    await Promise.all([...this.followed.values()].filter((f) => !f.stop).map((f) => f.informer.synced));
    await this.queue.run(4, (key) => this.sync(key), signal, (key, err) => this.log.warn('garbage collection failed', { object: key, err }));
  }
}
