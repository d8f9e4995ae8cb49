import { providerGroup } from '../api/kinds/provider.js';
import { Informer } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * The tenant controller: each Tenant has the namespace of its name, where its Clusters and
 * their kubeconfig Secrets live, owned by the Tenant so that deleting a tenant deletes
 * everything it had (the garbage collector, then the namespace controller, then each Cluster's
 * finalizer).
 */
export const tenantLabel = 'kubicle.io/tenant';

export class TenantController {
  private readonly queue = new WorkQueue();
  private readonly tenants: Informer;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {
    this.tenants = new Informer(client, `/apis/${providerGroup}/v1alpha1/tenants`, log);
    this.tenants.on({ add: (t) => this.queue.add(t.metadata.name), update: (_, t) => this.queue.add(t.metadata.name) });
  }

  private async sync(name: string): Promise<void> {
    const t = this.tenants.get(name);
    if (!t || t.metadata.deletionTimestamp) return;
    const ns: Obj = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name,
        labels: { [tenantLabel]: name },
        ownerReferences: [{ apiVersion: `${providerGroup}/v1alpha1`, kind: 'Tenant', name, uid: t.metadata.uid }],
      },
    };
    try {
      await this.client.create(resourcePath({ version: 'v1', plural: 'namespaces' }), ns);
      this.log.info('tenant namespace created', { tenant: name });
    } catch (err) {
      if (!isCode(err, 'AlreadyExists')) throw err;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const informer = this.tenants.run(signal);
    await Promise.all([informer, this.queue.run(1, (n) => this.sync(n), signal, (n, err) => this.log.warn('tenant sync failed', { tenant: n, err }))]);
  }
}
