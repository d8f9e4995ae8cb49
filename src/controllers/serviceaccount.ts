import { Informer } from '../client/informer.js';
import { type KubeClient, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Service account controller: every active namespace has a `default` ServiceAccount; one that
 * is deleted comes back. Keys are namespace names.
 */
export class ServiceAccountController {
  private readonly queue = new WorkQueue();
  private readonly namespaces: Informer;
  private readonly accounts: Informer;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {
    this.namespaces = new Informer(client, '/api/v1/namespaces', log);
    this.accounts = new Informer(client, '/api/v1/serviceaccounts?fieldSelector=metadata.name%3Ddefault', log);
    this.namespaces.on({ add: (ns) => this.queue.add(ns.metadata.name), update: (_, ns) => this.queue.add(ns.metadata.name) });
    this.accounts.on({ delete: (sa) => this.queue.add(sa.metadata.namespace) });
  }

  private async sync(ns: string): Promise<void> {
    const namespace = this.namespaces.get(ns);
    if (!namespace || namespace.metadata.deletionTimestamp || this.accounts.get(`${ns}/default`)) return;
    try {
      await this.client.create(resourcePath({ version: 'v1', plural: 'serviceaccounts', namespace: ns }), {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'default', namespace: ns },
      });
      this.log.info('created default service account', { namespace: ns });
    } catch (err) {
      // Exists already (the cache lags), or the namespace is going away: nothing to do.
      if (!isCode(err, 'AlreadyExists') && !isCode(err, 'Forbidden') && !isCode(err, 'NotFound')) throw err;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = [this.namespaces.run(signal), this.accounts.run(signal)];
    await Promise.race([Promise.all([this.namespaces.synced, this.accounts.synced]), Promise.all(informers)]);
    await Promise.all([...informers, this.queue.run(2, (ns) => this.sync(ns), signal, (ns, err) => this.log.warn('service account sync failed', { namespace: ns, err }))]);
  }
}
