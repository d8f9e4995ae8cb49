import { InformerFactory } from '../client/informer-factory.js';
import type { KubeClient } from '../client/kube-client.js';
import type { Logger } from '../observe/log.js';
import { ensureSysctl, ip, removeTable } from './host-net.js';
import { renderServiceRules, type ServiceRulesOptions, servicePortRules } from './service-rules.js';
import { TableSync } from './table-sync.js';

export interface ServiceProxyOptions extends ServiceRulesOptions {
  /**
   * The cluster's service range: routed to the bridge, so host traffic to cluster IPs never leaves
   * the machine. Not for an isolated cluster (the host does not reach its Services).
   */
  serviceCidr?: string;
}

/**
 * The node's service proxy (kube-proxy's part): watches Services and EndpointSlices and keeps one
 * nftables table in step with them (see TableSync). On stop the table and route are removed.
 */
export class ServiceProxy {

  constructor(
    private readonly client: KubeClient,
    private readonly opts: ServiceProxyOptions,
    private readonly log: Logger,
  ) {
  }

  async run(signal: AbortSignal): Promise<void> {
    await ensureSysctl('net.ipv4.ip_forward', '1');
    // Replies from a pod to a pod that reached it through a cluster IP cross the bridge without
    // routing; only with bridged traffic passing netfilter can conntrack undo the DNAT.
    await ensureSysctl('net.bridge.bridge-nf-call-iptables', '1');
    // Node ports on 127.0.0.1: DNATed loopback traffic may then leave through the bridge (masqueraded).
    if (!this.opts.isolated) await ensureSysctl(`net.ipv4.conf.${this.opts.bridge}.route_localnet`, '1');
    const route = this.opts.isolated ? undefined : this.opts.serviceCidr;
    if (route) await ip([`route replace ${route} dev ${this.opts.bridge}`]);
    const informers = new InformerFactory(this.client, this.log);
    const services = informers.for('/api/v1/services');
    const slices = informers.for('/apis/discovery.k8s.io/v1/endpointslices');
    const table = new TableSync(() => renderServiceRules(this.opts, servicePortRules(services.list(), slices.list(), this.opts.nodeName, this.opts.loadBalancerPool)), this.log);
    const changed = () => void table.schedule();
    for (const inf of [services, slices]) inf.on({ add: changed, update: changed, delete: changed });
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    informers.start(signal);
    // Stopped before the first list (a control plane put to sleep as it woke): nothing to program.
    await Promise.race([informers.synced(), aborted]);
    if (!signal.aborted) {
      await table.schedule();
      this.log.info('service proxy ready', { table: this.opts.table });
      await aborted;
    }
    await table.stop();
    await informers.stopped();
    await removeTable(this.opts.table).catch((err) => this.log.warn('service rules not removed', { err }));
    if (route) await ip([`route del ${route} dev ${this.opts.bridge}`]).catch(() => {});
  }
}
