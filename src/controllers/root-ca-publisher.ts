import { Informer } from '../client/informer.js';
import { type KubeClient, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Root CA publisher: every active namespace has the ConfigMap kube-root-ca.crt holding the CA
 * that verifies the API server (`ca.crt`), which pods read through their kube-api-access volume.
 * A copy that is changed or deleted is put back. Keys are namespace names.
 */
const name = 'kube-root-ca.crt';
const description =
  'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.';

export class RootCaPublisher {
  private readonly queue = new WorkQueue();
  private readonly namespaces: Informer;
  private readonly configMaps: Informer;

  constructor(
    private readonly client: KubeClient,
    private readonly caPem: string,
    private readonly log: Logger,
  ) {
    this.namespaces = new Informer(client, '/api/v1/namespaces', log);
    this.configMaps = new Informer(client, `/api/v1/configmaps?fieldSelector=metadata.name%3D${name}`, log);
    this.namespaces.on({ add: (ns) => this.queue.add(ns.metadata.name), update: (_, ns) => this.queue.add(ns.metadata.name) });
    this.configMaps.on({ update: (_, cm) => this.queue.add(cm.metadata.namespace), delete: (cm) => this.queue.add(cm.metadata.namespace) });
  }

  private async sync(ns: string): Promise<void> {
    const namespace = this.namespaces.get(ns);
    if (!namespace || namespace.metadata.deletionTimestamp) return;
    const current = this.configMaps.get(`${ns}/${name}`);
    if (current?.data?.['ca.crt'] === this.caPem) return;
    const path = resourcePath({ version: 'v1', plural: 'configmaps', namespace: ns });
    try {
      if (current) {
        await this.client.update(`${path}/${name}`, { ...current, data: { 'ca.crt': this.caPem } });
      } else {
        await this.client.create(path, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns, annotations: { 'kubernetes.io/description': description } }, data: { 'ca.crt': this.caPem } });
      }
    } catch (err) {
      // Written meanwhile (the cache lags: the next event brings it back), or the namespace is going away.
      if (!isCode(err, 'AlreadyExists') && !isCode(err, 'Conflict') && !isCode(err, 'Forbidden') && !isCode(err, 'NotFound')) throw err;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = [this.namespaces.run(signal), this.configMaps.run(signal)];
    await Promise.race([Promise.all([this.namespaces.synced, this.configMaps.synced]), Promise.all(informers)]);
    await Promise.all([...informers, this.queue.run(2, (ns) => this.sync(ns), signal, (ns, err) => this.log.warn('root CA publish failed', { namespace: ns, err }))]);
  }
}
