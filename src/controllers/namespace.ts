import { Informer } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Namespace controller: a namespace being deleted has its contents deleted (every namespaced
 * resource discovery lists), and once nothing is left its `kubernetes` finalizer is removed
 * through /finalize, which lets the API server delete it. Keys are namespace names; a namespace
 * with contents left is looked at again a second later.
 */
export class NamespaceController {
  private readonly queue = new WorkQueue();
  private readonly namespaces: Informer;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {
    this.namespaces = new Informer(client, '/api/v1/namespaces', log);
    const consider = (ns: Obj) => {
      if (ns.metadata?.deletionTimestamp) this.queue.add(ns.metadata.name);
    };
    this.namespaces.on({ add: consider, update: (_, ns) => consider(ns) });
  }

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

  /** Deletes the namespace's contents; finalizes it when empty, else looks again later. */
  private async sync(name: string): Promise<void> {
    let ns: Obj;
    try {
      ns = await this.client.get(resourcePath({ version: 'v1', plural: 'namespaces', name }));
    } catch (err) {
      if (isCode(err, 'NotFound')) return;
      throw err;
    }
    if (!ns.metadata?.deletionTimestamp || !(ns.spec?.finalizers ?? []).includes('kubernetes')) return;
    let remaining = 0;
    for (const r of await this.namespacedResources()) {
      const path = resourcePath({ ...r, namespace: name });
      await this.client.delete(path, { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
      remaining += ((await this.client.get(`${path}?limit=1`)).items ?? []).length;
    }
    if (remaining > 0) {
      this.queue.addAfter(name, 1000);
      return;
    }
    ns.spec.finalizers = (ns.spec.finalizers as string[]).filter((f) => f !== 'kubernetes');
    await this.client.update(resourcePath({ version: 'v1', plural: 'namespaces', name, subresource: 'finalize' }), ns);
    this.log.info('namespace finalized', { namespace: name });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.namespaces.run(signal), this.queue.run(2, (name) => this.sync(name), signal, (name, err) => this.log.warn('namespace cleanup failed', { namespace: name, err }))]);
  }
}
