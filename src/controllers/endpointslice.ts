import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { ownerReferenceTo } from './owner.js';
import { backendsOf, requeueServicesOf, serviceSelector } from './service-backends.js';

/**
 * EndpointSlice controller: the Service's backends as discovery.k8s.io/v1 EndpointSlices (up to
 * 100 endpoints each, generated names, labelled with the Service name and this manager, owned by
 * the Service) with ready, serving and terminating conditions per endpoint.
 */
const SERVICE = 'kubernetes.io/service-name';
const MANAGER = 'endpointslice.kubernetes.io/managed-by';
const ME = 'endpointslice-controller.k8s.io';
const perSlice = 100;

export class EndpointSliceController {
  private readonly queue = new WorkQueue();
  private readonly services: Informer;
  private readonly pods: Informer;
  private readonly slices: Informer;
  /** Slices this controller created that its informer has not shown yet (by Service key): without
   * them, a second sync in that gap would create a duplicate slice. */
  private readonly unseen = new Map<string, Obj[]>();

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.services = informers.for('/api/v1/services');
    this.pods = informers.for('/api/v1/pods');
    this.slices = informers.for('/apis/discovery.k8s.io/v1/endpointslices');
    this.services.on({ add: (s) => this.queue.add(objectKey(s)), update: (_, s) => this.queue.add(objectKey(s)) });
    this.pods.on(requeueServicesOf(this.services, this.queue));
  }

  private async sync(key: string): Promise<void> {
    const svc = this.services.get(key);
    if (!svc || !serviceSelector(svc)) {
      this.unseen.delete(key);
      return; // gone: the garbage collector removes owned slices
    }
    const ns = svc.metadata.namespace;
    const base = resourcePath({ group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespace: ns });
    const backends = backendsOf(svc, this.pods.listNamespace(ns));
    const ports = (backends[0]?.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol }));
    const endpoints = backends.map((b) => ({
      addresses: [b.ip],
      conditions: { ready: b.ready, serving: !b.terminating || b.ready, terminating: b.terminating },
      nodeName: b.pod.spec?.nodeName,
      targetRef: { kind: 'Pod', namespace: ns, name: b.pod.metadata.name, uid: b.pod.metadata.uid },
    }));
    const chunks: Obj[][] = [];
    for (let i = 0; i < endpoints.length; i += perSlice) chunks.push(endpoints.slice(i, i + perSlice));
    if (!chunks.length) chunks.push([]);
    const seen = this.slices.listNamespace(ns).filter((s) => s.metadata.labels?.[SERVICE] === svc.metadata.name && s.metadata.labels?.[MANAGER] === ME);
    const unseen = (this.unseen.get(key) ?? []).filter((u) => !seen.some((s) => s.metadata.name === u.metadata.name));
    this.unseen.set(key, unseen);
    const existing = [...seen, ...unseen];
    const labels = { ...(svc.metadata.labels ?? {}), [SERVICE]: svc.metadata.name, [MANAGER]: ME };
    for (let i = 0; i < chunks.length; i++) {
      const body = { addressType: 'IPv4', endpoints: chunks[i], ports };
      const cur = existing[i];
      if (!cur) {
        const made = await this.client.create(base, {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { generateName: `${svc.metadata.name}-`, namespace: ns, labels, ownerReferences: [ownerReferenceTo(svc, 'v1', 'Service')] },
          ...body,
        });
        unseen.push(made);
      } else if (JSON.stringify({ e: cur.endpoints ?? [], p: cur.ports ?? [] }) !== JSON.stringify({ e: body.endpoints, p: body.ports })) {
        await this.client.update(`${base}/${cur.metadata.name}`, { ...cur, ...body });
      }
    }
    for (const extra of existing.slice(chunks.length)) {
      await this.client.delete(`${base}/${extra.metadata.name}`).catch((err) => {
        if (!isCode(err, 'NotFound')) throw err;
      });
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.services.synced, this.pods.synced, this.slices.synced]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('endpointslice sync failed', { service: key, err }));
  }
}
