import { crdCleanupFinalizer, customresourcedefinitions } from '../api/kinds/apiextensions.js';
import { customResourceTypes } from '../api/kinds/custom-resource.js';
import type { KubeObject } from '../api/object.js';
import { deepEqual } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import type { ResourceType } from '../api/resource-type.js';
import { now } from '../api/time.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { prefixFor } from './object-codec.js';
import type { ObjectStore } from './object-store.js';
import type { WatchCache } from './watch-cache.js';

// biome-ignore lint/suspicious/noExplicitAny: CRD specs are untyped JSON
type J = Record<string, any>;

/**
 * Serves what CustomResourceDefinitions declare (upstream's apiextensions controllers, run in
 * every API server replica): follows CRDs through the watch cache, adds or withdraws their
 * resources in the registry (so discovery, OpenAPI and routing change at once), reports
 * NamesAccepted and Established in each CRD's status, and on deletion deletes the CRD's
 * objects before letting its cleanup finalizer go.
 */
export class CrdRegistrar {
  /** Storage identity each CRD serves, and the spec it was built from, by CRD name. */
  private readonly served = new Map<string, { storage: string; spec: string }>();
  private readonly retry = new Map<string, NodeJS.Timeout>();
  private unsubscribe?: () => void;

  constructor(
    private readonly registry: Registry,
    private readonly store: () => ObjectStore,
    private readonly log: Logger,
  ) {}

  async bind(cache: WatchCache): Promise<void> {
    const listed = await this.store().list(customresourcedefinitions, undefined, { labels: [], fields: [] });
    for (const crd of listed.items) this.serve(crd);
    for (const crd of listed.items) void this.reconcile(crd);
    this.unsubscribe = await cache.subscribe(
      prefixFor(customresourcedefinitions),
      Number(listed.resourceVersion),
      (ev) => {
        if (ev.type === 'delete') this.withdraw(ev.object.metadata.name as string);
        else {
          this.serve(ev.object);
          void this.reconcile(ev.object);
        }
      },
      (err) => this.log.warn('CRD watch ended', { err }),
    );
  }

  stop(): void {
    this.unsubscribe?.();
    for (const t of this.retry.values()) clearTimeout(t);
  }

  /** The resource types another definition already serves under this CRD's group, plural or kind. */
  private conflict(crd: KubeObject): string | undefined {
    const spec = crd.spec as J;
    const storage = `${spec.group}/${spec.names.plural}`;
    for (const rt of this.registry.all) {
      if (rt.group !== spec.group || rt.storage === storage) continue;
      if (rt.plural === spec.names.plural) return `"${spec.names.plural}" is already in use`;
      if (rt.kind === spec.names.kind) return `"${spec.names.kind}" is already in use`;
    }
    return undefined;
  }

  private serve(crd: KubeObject): void {
    const name = crd.metadata.name as string;
    const spec = JSON.stringify(crd.spec);
    // Status writes change nothing served: keep the registry (and the OpenAPI built from it).
    if (this.served.get(name)?.spec === spec) return;
    if (this.conflict(crd)) return;
    let types: ResourceType[];
    try {
      types = customResourceTypes(crd);
    } catch (err) {
      this.log.warn('CRD cannot be served', { crd: name, err });
      return;
    }
    const before = this.served.get(name);
    if (before) this.registry.remove(before.storage);
    this.registry.add(types);
    this.served.set(name, { storage: `${crd.spec.group}/${crd.spec.names.plural}`, spec });
  }

  private withdraw(name: string): void {
    const served = this.served.get(name);
    if (served) this.registry.remove(served.storage);
    this.served.delete(name);
    clearTimeout(this.retry.get(name));
    this.retry.delete(name);
  }

  /** Brings a CRD's status up to date and carries out its deletion. */
  private async reconcile(crd: KubeObject): Promise<void> {
    const name = crd.metadata.name as string;
    try {
      const conflict = this.conflict(crd);
      const terminating = !!crd.metadata.deletionTimestamp;
      const want: J[] = [
        conflict ? cond('NamesAccepted', 'False', 'MultipleNamesNotAllowed', conflict) : cond('NamesAccepted', 'True', 'NoConflicts', 'no conflicts found'),
        conflict ? cond('Established', 'False', 'NotAccepted', 'not all names are accepted') : cond('Established', 'True', 'InitialNamesAccepted', 'the initial names have been accepted'),
      ];
      if (terminating) want.push(cond('Terminating', 'True', 'InstanceDeletionInProgress', 'CustomResourceDefinition marked for deletion; deleting its objects'));
      await this.writeStatus(name, want, conflict === undefined);
      if (terminating && crd.metadata.finalizers?.includes(crdCleanupFinalizer)) await this.cleanUp(crd);
    } catch (err) {
      if (isCode(err, 'NotFound')) return;
      this.log.warn('CRD reconcile failed; retrying', { crd: name, err });
      this.later(crd);
    }
  }

  private later(crd: KubeObject): void {
    const name = crd.metadata.name as string;
    clearTimeout(this.retry.get(name));
    this.retry.set(
      name,
      setTimeout(async () => {
        this.retry.delete(name);
        try {
          void this.reconcile(await this.store().get(customresourcedefinitions, undefined, name));
        } catch {
          // Gone meanwhile: the delete event withdraws it.
        }
      }, 1000),
    );
  }

  private async writeStatus(name: string, want: J[], accepted: boolean): Promise<void> {
    let changed = false;
    await this.store().update(
      customresourcedefinitions,
      undefined,
      name,
      (cur) => {
        const status: J = cur.status ?? {};
        const old: J[] = status.conditions ?? [];
        const conditions = want.map((c) => {
          const prev = old.find((o) => o.type === c.type);
          return prev && prev.status === c.status ? { ...c, lastTransitionTime: prev.lastTransitionTime } : c;
        });
        const storage = (cur.spec.versions as J[]).find((v) => v.storage)?.name;
        const next: J = {
          ...status,
          conditions,
          acceptedNames: accepted ? cur.spec.names : (status.acceptedNames ?? { plural: '', kind: '' }),
          storedVersions: [...new Set([...(status.storedVersions ?? []), ...(storage ? [storage] : [])])],
        };
        changed = !deepEqual(next, status);
        cur.status = next;
        return cur;
      },
      { subresource: 'status' },
    );
    if (changed) this.log.debug('CRD status updated', { crd: name });
  }

  /** Deletes every object of the CRD; once none is left, lets the CRD go. */
  private async cleanUp(crd: KubeObject): Promise<void> {
    const name = crd.metadata.name as string;
    const rt = this.registry.all.find((r) => r.storage === `${crd.spec.group}/${crd.spec.names.plural}`);
    if (rt) {
      const store = this.store();
      await store.deleteCollection(rt, undefined, { labels: [], fields: [] });
      const left = await store.list(rt, undefined, { labels: [], fields: [], limit: 1 });
      if (left.items.length) {
        this.later(crd);
        return;
      }
    }
    await this.store().update(customresourcedefinitions, undefined, name, (cur) => {
      cur.metadata.finalizers = (cur.metadata.finalizers ?? []).filter((f) => f !== crdCleanupFinalizer);
      return cur;
    });
  }
}

function cond(type: string, status: string, reason: string, message: string): J {
  return { type, status, lastTransitionTime: now(), reason, message };
}
