import { setTimeout as delay } from 'node:timers/promises';
import { providerGroup } from '../api/kinds/provider.js';
import { Informer } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import type { SandboxUsage } from '../sandbox/api/types.js';
import { clusterLabel, tenantLabel } from './sandbox-gateway.js';

/** What measured use costs, per hour of it (the operator's price list; `--price-list`). */
export interface PriceList {
  currency: string;
  cpuHour: number;
  memoryGiBHour: number;
  controlPlaneHour: number;
}

export const defaultPrices: PriceList = { currency: 'EUR', cpuHour: 0.036, memoryGiBHour: 0.004, controlPlaneHour: 0.01 };

interface Amounts {
  cpuSeconds: number;
  memoryGiBSeconds: number;
}

/** A Usage object's status: everything since `since`. */
interface UsageStatus {
  cluster: { name: string; uid: string };
  since: string;
  updated: string;
  total: Amounts & { controlPlaneSeconds: number };
  controlPlane: Amounts;
  /** The cluster's pods, by their namespace in the cluster. */
  namespaces: Record<string, Amounts>;
  cost: { currency: string; cpu: number; memory: number; controlPlane: number; total: number };
}

const controlPlaneRole = 'control-plane';

/** The hosts whose sandboxes are metered (provider/hosts.ts). */
export interface MeteredHosts {
  names(): string[];
  agent(name: string): SandboxClient;
}

/**
 * The meter (DESIGN §2.5): samples every sandbox's cgroup usage on each host, one Sandbox API
 * call per host each interval, and adds what each used since the last sample to its cluster's
 * Usage — CPU time, memory held over time (GiB-seconds), and for control planes the time their
 * process ran — by the cluster's namespaces and its control plane, priced from the price list. A sandbox with
 * no process (a sleeping control plane) adds no control-plane time and no memory (what its cgroup
 * still holds is page cache of its files, reclaimable, not the tenant's use), and CPU only for
 * what its last process used since the previous sample; a cluster whose sandboxes added nothing
 * is not written, so a thousand sleeping clusters cost the provider no writes. Usage outlives its
 * Cluster: it is what the tenant is billed for.
 * A restarted provider continues from the stored Usage objects; the interval in which it was
 * down is not counted, nor is a host's memory in an interval it did not answer (its CPU is: the
 * counters are cumulative).
 */
export class Meter {
  private readonly usage = new Map<string, UsageStatus>();
  /** Each sandbox's CPU counter at its last sample, and its host. */
  private readonly lastCpu = new Map<string, { host: string; cpuNanos: number }>();
  /** When each host was last sampled: memory is held over the time since. */
  private readonly lastSample = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private readonly clusters: Informer;

  constructor(
    private readonly hosts: MeteredHosts,
    private readonly client: KubeClient,
    private readonly prices: PriceList,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.clusters = new Informer(client, `/apis/${providerGroup}/v1alpha1/clusters`, log);
  }

  async run(signal: AbortSignal): Promise<void> {
    const informing = this.clusters.run(signal);
    await Promise.race([this.clusters.synced, informing]);
    await this.loop(signal);
    await informing;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const list = await this.client.get(`/apis/${providerGroup}/v1alpha1/usages`);
    for (const u of (list.items ?? []) as Obj[]) if (u.status?.total) this.usage.set(`${u.metadata.namespace}/${u.metadata.name}`, u.status as UsageStatus);
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await this.sample();
        await this.flush();
      } catch (err) {
        this.log.warn('metering sample failed', { err });
      }
      this.log.debug('metering sample', { ms: Date.now() - started });
      await delay(this.intervalMs, undefined, { signal }).catch(() => {});
    }
  }

  /** One sample of every host; one that does not answer is skipped, and the others counted. */
  async sample(): Promise<void> {
    await Promise.all(
      this.hosts.names().map((host) =>
        this.sampleHost(host).catch((err) => {
          // Its memory in this interval is not known, so not billed: the next interval starts now.
          if (this.lastSample.has(host)) this.lastSample.set(host, Date.now());
          this.log.warn('host not sampled', { host, err });
        }),
      ),
    );
  }

  /** One host's sample: each sandbox's use since the last one, added to its cluster's Usage. */
  private async sampleHost(host: string): Promise<void> {
    const now = Date.now();
    // A stopped agent never answers: it must not hold up the other hosts' samples.
    const all = await this.hosts.agent(host).usageAll(AbortSignal.timeout(Math.max(this.intervalMs, 5000)));
    const last = this.lastSample.get(host);
    const first = last === undefined;
    const seconds = first ? 0 : (now - last) / 1000;
    this.lastSample.set(host, now);
    const byUid = new Map(this.clusters.list().map((c) => [c.metadata.uid as string, c]));
    for (const s of all) {
      const cluster = this.clusterOf(s, byUid);
      if (!cluster) continue;
      const prev = this.lastCpu.get(s.id)?.cpuNanos;
      this.lastCpu.set(s.id, { host, cpuNanos: s.usage.cpuNanos });
      // Known at the last sample: what it used since. New since (and not at the meter's start): all it used.
      const cpu = prev !== undefined ? Math.max(0, s.usage.cpuNanos - prev) / 1e9 : first ? 0 : s.usage.cpuNanos / 1e9;
      const memory = s.running ? (s.usage.memoryBytes / 2 ** 30) * seconds : 0;
      if (!s.running && cpu === 0) continue;
      const u = this.statusOf(cluster, now);
      const controlPlane = s.labels['kubicle.io/role'] === controlPlaneRole;
      const bucket = controlPlane ? u.controlPlane : (u.namespaces[s.labels['kubicle.io/namespace'] ?? ''] ??= { cpuSeconds: 0, memoryGiBSeconds: 0 });
      bucket.cpuSeconds += cpu;
      bucket.memoryGiBSeconds += memory;
      u.total.cpuSeconds += cpu;
      u.total.memoryGiBSeconds += memory;
      if (controlPlane && s.running) u.total.controlPlaneSeconds += seconds;
      u.updated = new Date(now).toISOString();
      this.price(u);
      this.dirty.add(`${cluster.metadata.namespace}/${cluster.metadata.name}`);
    }
    // Sandboxes gone from this host are forgotten; ids are unique across hosts (they carry the cluster's uid).
    const here = new Set(all.map((s) => s.id));
    for (const [id, last] of this.lastCpu) if (last.host === host && !here.has(id)) this.lastCpu.delete(id);
  }

  /** The cluster a sandbox belongs to: pods by the gateway's label, control planes by theirs. */
  private clusterOf(s: SandboxUsage, byUid: Map<string, Obj>): Obj | undefined {
    if (!s.labels?.[tenantLabel]) return undefined;
    const uid = s.labels[clusterLabel];
    if (uid) return byUid.get(uid);
    const [ns, name] = (s.labels['kubicle.io/cluster'] ?? '').split('.');
    return this.clusters.get(`${ns}/${name}`);
  }

  private statusOf(c: Obj, now: number): UsageStatus {
    const key = `${c.metadata.namespace}/${c.metadata.name}`;
    let u = this.usage.get(key);
    if (!u || u.cluster.uid !== c.metadata.uid) {
      // A new cluster, or a new one of a deleted one's name: its use starts from nothing, in a Usage of its own.
      const zero = () => ({ cpuSeconds: 0, memoryGiBSeconds: 0 });
      const since = new Date(now).toISOString();
      u = { cluster: { name: c.metadata.name, uid: c.metadata.uid }, since, updated: since, total: { ...zero(), controlPlaneSeconds: 0 }, controlPlane: zero(), namespaces: {}, cost: { currency: this.prices.currency, cpu: 0, memory: 0, controlPlane: 0, total: 0 } };
      this.usage.set(key, u);
    }
    return u;
  }

  private price(u: UsageStatus): void {
    const p = this.prices;
    const cpu = (u.total.cpuSeconds / 3600) * p.cpuHour;
    const memory = (u.total.memoryGiBSeconds / 3600) * p.memoryGiBHour;
    const controlPlane = (u.total.controlPlaneSeconds / 3600) * p.controlPlaneHour;
    u.cost = { currency: p.currency, cpu, memory, controlPlane, total: cpu + memory + controlPlane };
  }

  /** Writes the Usage objects that changed. */
  private async flush(): Promise<void> {
    for (const key of [...this.dirty]) {
      this.dirty.delete(key);
      const [namespace, name] = key.split('/');
      const status = this.usage.get(key);
      const base = resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'usages', namespace });
      try {
        await this.client.patch(`${base}/${name}/status`, { status });
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
        await this.client.create(base, { apiVersion: `${providerGroup}/v1alpha1`, kind: 'Usage', metadata: { name, namespace, labels: { 'kubicle.io/cluster': name } }, spec: {}, status });
      }
    }
  }
}
