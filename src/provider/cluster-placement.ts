import type { Obj } from '../client/kube-client.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import { controlPlaneRequests } from './cluster-quota.js';
import { chooseHosts, type HostFit } from './placement.js';

/** The provider's hosts as the cluster controller uses them (provider/hosts.ts). */
export interface ClusterHosts {
  /** A registered host's Sandbox API; Unavailable when no host of that name is registered. */
  agent(name: string): SandboxClient;
  /** Every registered host as placement weighs it, asked now; control planes are not in `allocated`. */
  fits(): Promise<HostFit[]>;
  /** Whether the host's agent answers (its Host is Ready). */
  ready(name: string): boolean;
  /** Since when (ms since the epoch) a registered host has not been Ready; undefined while it is, or unknown. */
  notReadySince(name: string): number | undefined;
  /** Every registered host. */
  names(): string[];
  /** A host's capacity as its Host shows it, if known. */
  capacity(name: string): { cpu: string; memory: string } | undefined;
}

const keyOf = (c: Obj) => `${c.metadata.namespace}/${c.metadata.name}`;
const demandOf = (c: Obj) => ({ ...controlPlaneRequests(c), runtime: c.spec.controlPlane?.runtimeClassName ?? 'runc' });

/**
 * Where clusters go (DESIGN §2.3): a cluster is placed whole on one host — its first control-plane
 * replica, its pod network and its pods (ADR 0023) — and each further replica on another host,
 * spread over zones (chooseHosts), weighed by what the hosts' pods may use (their limits) and what
 * the control planes placed there request. Placements run one at a time and each is remembered
 * here at once, so clusters created together spread rather than all taking the host that was
 * emptiest before any of them.
 */
export class ClusterPlacement {
  private readonly placedOn = new Map<string, string[]>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly hosts: ClusterHosts,
    private readonly clusters: () => Obj[],
  ) {}

  /** Chooses the hosts of `c`'s replicas (its pods' host first) and remembers them; or says why they cannot be placed now. */
  place(c: Obj): Promise<{ hosts: string[] } | { refusal: string }> {
    return this.serially(async () => {
      const choice = chooseHosts(demandOf(c), await this.weighed(c), c.spec.controlPlane?.replicas ?? 1);
      if ('hosts' in choice) this.placedOn.set(keyOf(c), choice.hosts);
      return choice;
    });
  }

  /**
   * A new host for replica `i` of placed cluster `c`, whose host is lost: the other replicas stay
   * where they are and are avoided, hosts and zones, as at placement. Resolves with every
   * replica's host, remembered at once; or says why no host can take it now.
   */
  move(c: Obj, i: number): Promise<{ hosts: string[] } | { refusal: string }> {
    return this.serially(async () => {
      const current = this.replicaHosts(c) ?? [];
      const choice = chooseHosts(demandOf(c), await this.weighed(c), 1, current.filter((_, j) => j !== i));
      if ('refusal' in choice) return choice;
      const hosts = current.map((h, j) => (j === i ? choice.hosts[0] : h));
      this.placedOn.set(keyOf(c), hosts);
      return { hosts };
    });
  }

  /** Every host as placement weighs it, with the running control planes of clusters but `c` counted where they run. */
  private async weighed(c: Obj): Promise<HostFit[]> {
    const fits = await this.hosts.fits();
    const byName = new Map(fits.map((f) => [f.name, f]));
    for (const x of this.clusters()) {
      // A sleeping or stopped control plane uses nothing; it wakes where it was.
      if (keyOf(x) === keyOf(c) || x.spec.stopped || x.status?.phase === 'Sleeping') continue;
      const r = controlPlaneRequests(x);
      for (const host of this.replicaHosts(x) ?? []) {
        const on = byName.get(host);
        if (!on) continue;
        on.allocated.cpuMillis += r.cpuMillis;
        on.allocated.memoryBytes += r.memoryBytes;
      }
    }
    return fits;
  }

  /** Placements one at a time, each seeing the ones before it. */
  private serially<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work);
    this.chain = next.catch(() => {});
    return next;
  }

  /** The host `c` was placed on (its pods' and first replica's), if it was: remembered here, or as its status says. */
  hostOf(c: Obj): string | undefined {
    return this.replicaHosts(c)?.[0];
  }

  /** The hosts of `c`'s control-plane replicas, in replica order, if it was placed. */
  replicaHosts(c: Obj): string[] | undefined {
    const recorded = c.status?.replicaHosts as string[] | undefined;
    // A cluster placed before it had replicas runs its one where its status says.
    return this.placedOn.get(keyOf(c)) ?? (recorded?.length ? recorded : c.status?.host ? [c.status.host] : undefined);
  }

  placed(c: Obj): boolean {
    return this.hostOf(c) !== undefined;
  }

  /** Its placement is over (deleted, or not recorded after all). */
  forget(c: Obj): void {
    this.placedOn.delete(keyOf(c));
  }
}
