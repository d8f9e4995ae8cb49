import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { listWatch } from '../client/list-watch.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Namespace controller: a namespace being deleted has its contents deleted (every namespaced
 * resource discovery lists), and once nothing is left its `kubernetes` finalizer is removed
 * through /finalize, which lets the API server delete it.
 */
export class NamespaceController {
  private readonly busy = new Set<string>();
  private readonly again = new Set<string>();

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  private async namespacedResources(): Promise<{ group: string; version: string; plural: string }[]> {
    const out: { group: string; version: string; plural: string }[] = [];
    const seen = new Set<string>();
    const add = (groupVersion: string, list: Obj) => {
      const [group, version] = groupVersion.includes('/') ? groupVersion.split('/') : ['', groupVersion];
      for (const r of list.resources ?? []) {
        if (!r.namespaced || r.name.includes('/') || !r.verbs?.includes('deletecollection')) continue;
        // One version per resource is enough; events.k8s.io shares core Events' storage.
        const id = `${group === 'events.k8s.io' ? '' : group}/${r.name}`;
        if (seen.has(id)) continue;
        seen.add(id);
        out.push({ group, version, plural: r.name });
      }
    };
    add('v1', await this.client.get('/api/v1'));
    const groups = await this.client.get('/apis');
    for (const g of groups.groups ?? []) {
      const v = g.preferredVersion?.groupVersion ?? g.versions?.[0]?.groupVersion;
      if (v) add(v, await this.client.get(`/apis/${v}`));
    }
    return out;
  }

  private async sync(name: string): Promise<void> {
    if (this.busy.has(name)) {
      this.again.add(name);
      return;
    }
    this.busy.add(name);
    try {
      for (;;) {
        this.again.delete(name);
        const done = await this.cleanup(name);
        if (done && !this.again.has(name)) return;
        if (!done) await new Promise((r) => setTimeout(r, 1000));
      }
    } catch (err) {
      if (!isCode(err, 'NotFound')) this.log.warn('namespace cleanup failed', { namespace: name, err });
    } finally {
      this.busy.delete(name);
    }
  }

  /** One pass: delete contents; finalize when empty. Resolves true when nothing is left to wait for. */
  private async cleanup(name: string): Promise<boolean> {
    const ns = await this.client.get(resourcePath({ version: 'v1', plural: 'namespaces', name }));
    if (!ns.metadata?.deletionTimestamp || !(ns.spec?.finalizers ?? []).includes('kubernetes')) return true;
    let remaining = 0;
    for (const r of await this.namespacedResources()) {
      const path = resourcePath({ ...r, namespace: name });
      await this.client.delete(path, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
      const left = await this.client.get(`${path}?limit=1`);
      remaining += (left.items ?? []).length;
    }
    if (remaining > 0) return false;
    ns.spec.finalizers = (ns.spec.finalizers as string[]).filter((f) => f !== 'kubernetes');
    await this.client.update(resourcePath({ version: 'v1', plural: 'namespaces', name, subresource: 'finalize' }), ns);
    this.log.info('namespace finalized', { namespace: name });
    return true;
  }

  async run(signal: AbortSignal): Promise<void> {
    const consider = (ns: Obj) => {
      if (ns.metadata?.deletionTimestamp) void this.sync(ns.metadata.name);
    };
    await listWatch(
      this.client,
      '/api/v1/namespaces',
      {
        onSync: (items) => items.forEach(consider),
        onEvent: (ev) => {
          if (ev.type !== 'DELETED') consider(ev.object);
        },
      },
      this.log,
      signal,
    );
  }
}
