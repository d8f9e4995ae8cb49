import { type KubeClient, resourcePath } from '../client/kube-client.js';
import { listWatch } from '../client/list-watch.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Service account controller: every active namespace has a `default` ServiceAccount; one that
 * is deleted comes back.
 */
export class ServiceAccountController {
  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  private async ensure(ns: string): Promise<void> {
    try {
      await this.client.create(resourcePath({ version: 'v1', plural: 'serviceaccounts', namespace: ns }), {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: 'default', namespace: ns },
      });
      this.log.info('created default service account', { namespace: ns });
    } catch (err) {
      // Exists already, or the namespace is going away: nothing to do.
      if (!isCode(err, 'AlreadyExists') && !isCode(err, 'Forbidden') && !isCode(err, 'NotFound')) throw err;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const active = (ns: { metadata?: { name?: string; deletionTimestamp?: string } }) => ns.metadata?.name && !ns.metadata.deletionTimestamp;
    await Promise.all([
      listWatch(
        this.client,
        '/api/v1/namespaces',
        {
          onSync: async (items) => {
            for (const ns of items) if (active(ns)) await this.ensure(ns.metadata.name);
          },
          onEvent: async (ev) => {
            if (ev.type !== 'DELETED' && active(ev.object)) await this.ensure(ev.object.metadata.name);
          },
        },
        this.log,
        signal,
      ),
      listWatch(
        this.client,
        '/api/v1/serviceaccounts?fieldSelector=metadata.name%3Ddefault',
        {
          onEvent: async (ev) => {
            if (ev.type === 'DELETED') await this.ensure(ev.object.metadata.namespace);
          },
        },
        this.log,
        signal,
      ),
    ]);
  }
}
