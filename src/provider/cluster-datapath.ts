import { setTimeout as delay } from 'node:timers/promises';
import { type Cidr, formatIPv4, parseCidr } from '../api/ipv4.js';
import type { KubeClient } from '../client/kube-client.js';
import type { Logger } from '../observe/log.js';

/**
 * A cluster's share of the host's datapath — its Services on its network's bridge — the part a
 * node's kube-proxy plays upstream. The provider runs it while the control plane runs, reading
 * the cluster's objects through `client` only. `run` serves until the signal aborts, then
 * removes what it programmed; it may reject, and is then started again on the next wake.
 */
export interface ClusterDatapath {
  run(target: { cluster: string; client: KubeClient; network: { bridge: string; cidr: string; gateway: string } }, signal: AbortSignal): Promise<void>;
}

/** Runs each cluster's datapath while its control plane runs, at most one per cluster. */
export class ClusterDatapaths {
  private readonly running = new Map<string, { stop: AbortController; done: Promise<void> }>();

  constructor(
    private readonly datapath: ClusterDatapath | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Starts `cluster`'s datapath on `bridge` for its pod range `cidr` unless it runs; `ask` lends it
   * the cluster's own API as its admin for as long as it runs.
   */
  run(cluster: string, bridge: string, cidr: string, ask: (use: (client: KubeClient) => Promise<void>) => Promise<void>): void {
    const datapath = this.datapath;
    if (!datapath || this.running.has(cluster)) return;
    const stop = new AbortController();
    const network = { bridge, cidr, gateway: formatIPv4((parseCidr(cidr) as Cidr).base + 1) };
    const done = ask((client) => datapath.run({ cluster, client, network }, stop.signal))
      .catch((err) => this.log.warn('cluster datapath stopped', { cluster, err }))
      .finally(() => {
        if (this.running.get(cluster)?.stop === stop) this.running.delete(cluster);
      });
    this.running.set(cluster, { stop, done });
  }

  /** Stops `cluster`'s datapath, waiting at most 10 s: it must never hold up a sleep, stop or delete, and its table is replaced at the next start anyway. */
  async stop(cluster: string): Promise<void> {
    const d = this.running.get(cluster);
    if (!d) return;
    d.stop.abort();
    await Promise.race([d.done, delay(10_000)]);
  }
}
