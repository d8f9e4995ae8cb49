import { type Cidr, parseCidr } from '../api/ipv4.js';
import { EventRecorder, type EventType } from '../client/event-recorder.js';
import { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { type Assignment, assignLoadBalancerIPs, proxyProtocol, wantsAddress } from './lb-pool.js';
import { ProxyForwarder, type ProxyListener } from './proxy-forwarder.js';
import { type ServicePortRule, servicePortRules } from './service-rules.js';

export interface LoadBalancerOptions {
  /** The pool addresses come from (on one machine, a range of 127.0.0.0/8). */
  pool: string;
  /** Addresses of the pool kept for others (the ingress controller's). */
  reserved: string[];
  /** The node whose endpoints count as local for externalTrafficPolicy Local. */
  nodeName: string;
}

const COMPONENT = 'kubicle-load-balancer';

/**
 * The platform's load balancer, the part a cloud provider plays for Services of type
 * LoadBalancer: it gives each an address from the pool and shows it in status.loadBalancer
 * (ipMode VIP: the service proxy forwards it in the kernel; ipMode Proxy: this component forwards
 * it in user space so it can prepend the PROXY protocol header). Addresses are taken back when a
 * Service stops being a LoadBalancer. Services it cannot serve get a Warning event saying why.
 */
export class LoadBalancer {
  private readonly pool: Cidr;
  private readonly reported = new Map<string, string>();

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: LoadBalancerOptions,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, COMPONENT, log);
    const pool = parseCidr(opts.pool);
    if (!pool) throw new KubicleError('Invalid', `load balancer pool ${JSON.stringify(opts.pool)} is not an IPv4 network`);
    this.pool = pool;
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = new InformerFactory(this.client, this.log);
    const services = informers.for('/api/v1/services');
    const slices = informers.for('/apis/discovery.k8s.io/v1/endpointslices');
    const forwarder = new ProxyForwarder(this.log);
    let rules: ServicePortRule[] = [];
    let running: Promise<void> | undefined;
    let again = false;
    let retry: NodeJS.Timeout | undefined;
    // Reconciles run one at a time; changes during one ask for one more.
    const reconcile = (): void => {
      if (running) {
        again = true;
        return;
      }
      running = (async () => {
        rules = servicePortRules(services.list(), slices.list(), this.opts.nodeName);
        const assigned = assignLoadBalancerIPs(services.list(), this.pool, this.opts.reserved);
        const failed = await this.writeStatuses(services.list(), assigned);
        await forwarder.sync(this.listeners(services.list(), assigned, () => rules));
        if (failed && !signal.aborted) {
          retry ??= setTimeout(() => {
            retry = undefined;
            reconcile();
          }, 1000);
        }
      })()
        .catch((err) => this.log.warn('load balancer reconcile failed', { err }))
        .finally(() => {
          running = undefined;
          if (again && !signal.aborted) {
            again = false;
            reconcile();
          }
        });
    };
    for (const inf of [services, slices]) inf.on({ add: reconcile, update: reconcile, delete: reconcile });
    informers.start(signal);
    await informers.synced();
    reconcile();
    this.log.info('load balancer ready', { pool: this.pool.text });
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    clearTimeout(retry);
    await running;
    forwarder.close();
    await informers.stopped();
  }

  /** Brings each Service's status in line with its assignment; true if a write failed (retried). */
  private async writeStatuses(all: Obj[], assigned: Map<string, Assignment>): Promise<boolean> {
    let failed = false;
    for (const svc of all) {
      const k = `${svc.metadata.namespace}/${svc.metadata.name}`;
      const a: Assignment | undefined = assigned.get(k);
      if (!wantsAddress(svc) && svc.spec?.loadBalancerClass) continue; // another load balancer's
      const want = a && 'ip' in a ? [{ ip: a.ip, ipMode: a.ipMode }] : [];
      const have = (svc.status?.loadBalancer?.ingress ?? []) as Obj[];
      if (a && 'error' in a) await this.report(svc, 'Warning', 'AllocationFailed', a.error);
      if (JSON.stringify(have.map((i) => ({ ip: i.ip, ipMode: i.ipMode }))) === JSON.stringify(want)) continue;
      if (!have.length && !want.length) continue;
      try {
        await this.client.request('PUT', resourcePath({ version: 'v1', plural: 'services', namespace: svc.metadata.namespace, name: svc.metadata.name, subresource: 'status' }), {
          ...svc,
          status: { ...svc.status, loadBalancer: want.length ? { ingress: want } : {} },
        });
        if (want.length) await this.report(svc, 'Normal', 'IPAllocated', `Assigned IP ${want[0].ip} (ipMode ${want[0].ipMode})`);
        else this.reported.delete(k);
      } catch (err) {
        if (!(err instanceof KubicleError && (err.code === 'Conflict' || err.code === 'NotFound'))) this.log.warn('load balancer status not written', { service: k, err });
        failed = true;
      }
    }
    return failed;
  }

  /** One event per Service per distinct message, so a reconcile loop does not flood events. */
  private async report(svc: Obj, type: EventType, reason: string, message: string): Promise<void> {
    const k = `${svc.metadata.namespace}/${svc.metadata.name}`;
    if (this.reported.get(k) === message) return;
    this.reported.set(k, message);
    this.events.record(svc, 'v1', 'Service', type, reason, message);
  }

  /** The listeners of the Services given an address in Proxy mode. */
  private listeners(all: Obj[], assigned: Map<string, Assignment>, rules: () => ServicePortRule[]): ProxyListener[] {
    const out: ProxyListener[] = [];
    for (const svc of all) {
      const a = assigned.get(`${svc.metadata.namespace}/${svc.metadata.name}`);
      const version = proxyProtocol(svc);
      if (!version || !a || !('ip' in a)) continue;
      const ip = a.ip;
      for (const p of (svc.spec.ports ?? []) as Obj[]) {
        if ((p.protocol ?? 'TCP') !== 'TCP') continue;
        const key = `${svc.metadata.namespace}/${svc.metadata.name}:${p.name ?? ''}:tcp`;
        out.push({
          ip,
          port: p.port,
          version,
          endpoints: () => {
            const rule = rules().find((r) => r.key === key);
            return (rule?.externalLocal ? rule.endpoints.filter((e) => e.local) : (rule?.endpoints ?? [])).map((e) => ({ ip: e.ip, port: e.port }));
          },
        });
      }
    }
    return out;
  }
}
