import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { backendsOf, requeueServicesOf, serviceSelector } from './service-backends.js';

/**
 * Endpoints controller: for every Service with a selector, an Endpoints object of the same name
 * listing ready pods under addresses and the others under notReadyAddresses (all under addresses
 * with publishNotReadyAddresses), grouped into subsets by their port sets. Removed with the Service.
 */
export class EndpointsController {
  private readonly queue = new WorkQueue();
  private readonly services: Informer;
  private readonly pods: Informer;
  private readonly endpoints: Informer;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.services = informers.for('/api/v1/services');
    this.pods = informers.for('/api/v1/pods');
    this.endpoints = informers.for('/api/v1/endpoints');
    this.services.on({ add: (s) => this.queue.add(objectKey(s)), update: (_, s) => this.queue.add(objectKey(s)), delete: (s) => this.queue.add(objectKey(s)) });
    this.pods.on(requeueServicesOf(this.services, this.queue));
  }

  private async sync(key: string): Promise<void> {
    const [ns, name] = key.split('/');
    const path = resourcePath({ version: 'v1', plural: 'endpoints', namespace: ns, name });
    const svc = this.services.get(key);
    const current = this.endpoints.get(key);
    if (!svc) {
      if (current && current.metadata.name !== 'kubernetes') {
        await this.client.delete(path).catch((err) => {
          if (!isCode(err, 'NotFound')) throw err;
        });
      }
      return;
    }
    if (!serviceSelector(svc)) return; // Endpoints of selector-less Services are the user's.
    const publishAll = !!svc.spec?.publishNotReadyAddresses;
    const subsets = new Map<string, Obj>();
    for (const b of backendsOf(svc, this.pods.listNamespace(ns))) {
      if (b.terminating && !publishAll) continue;
      const portKey = JSON.stringify(b.ports);
      let subset = subsets.get(portKey);
      if (!subset) subsets.set(portKey, (subset = { ports: b.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol })) }));
      const address = { ip: b.ip, nodeName: b.pod.spec?.nodeName, targetRef: { kind: 'Pod', namespace: ns, name: b.pod.metadata.name, uid: b.pod.metadata.uid } };
      const list = b.ready || publishAll ? 'addresses' : 'notReadyAddresses';
      (subset[list] ??= []).push(address);
    }
    const desired = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name, namespace: ns, labels: { ...(svc.metadata.labels ?? {}), ...(svc.spec?.clusterIP === 'None' ? { 'service.kubernetes.io/headless': '' } : {}) } },
      subsets: [...subsets.values()].filter((s) => s.ports.length),
    };
    if (!desired.subsets.length) delete (desired as Partial<typeof desired>).subsets;
    if (!current) {
      await this.client.create(resourcePath({ version: 'v1', plural: 'endpoints', namespace: ns }), desired).catch((err) => {
        if (!isCode(err, 'AlreadyExists')) throw err;
        this.queue.addAfter(key, 100);
      });
      return;
    }
    if (JSON.stringify(current.subsets ?? []) === JSON.stringify(desired.subsets ?? []) && JSON.stringify(current.metadata.labels ?? {}) === JSON.stringify(desired.metadata.labels)) return;
    await this.client.update(path, { ...desired, metadata: { ...current.metadata, labels: desired.metadata.labels } });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.services.synced, this.pods.synced, this.endpoints.synced]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('endpoints sync failed', { service: key, err }));
  }
}
