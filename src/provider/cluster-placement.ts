import type { Obj } from '../client/kube-client.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import { controlPlaneRequests } from './cluster-quota.js';
import { chooseHost, type HostFit } from './placement.js';

/** The provider's hosts as the cluster controller uses them (provider/hosts.ts). */
export interface ClusterHosts {
  /** A registered host's Sandbox API; Unavailable when no host of that name is registered. */
  agent(name: string): SandboxClient;
  /** Every registered host as placement weighs it, asked now; control planes are not in `allocated`. */
  fits(): Promise<HostFit[]>;
  /** A host's capacity as its Host shows it, if known. */
  capacity(name: string): { cpu: string; memory: string } | undefined;
}

const keyOf = (c: Obj) => `${c.metadata.namespace}/${c.metadata.name}`;

/**
 * Where clusters go (DESIGN §2.3): a cluster is placed whole on one host — its control plane,
 * its pod network and its pods (ADR 0023) — chosen by chooseHost over what the hosts' pods may
 * use (their limits) and what the control planes placed there request. Placements run one at a
 * time and each is remembered here at once, so clusters created together spread rather than
 * all taking the host that was emptiest before any of them.
 */
export class ClusterPlacement {
  private readonly placedOn = new Map<string, string>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly hosts: ClusterHosts,
    private readonly clusters: () => Obj[],
  ) {}

  /** Chooses the host for `c` and remembers it; or says why no host can take it now. */
  place(c: Obj): Promise<{ host: string } | { refusal: string }> {
    const next = this.chain.then(async () => {
      const fits = await this.hosts.fits();
      const byName = new Map(fits.map((f) => [f.name, f]));
      for (const x of this.clusters()) {
        const on = byName.get(this.hostOf(x) ?? '');
        // A sleeping or stopped control plane uses nothing; it wakes where it was.
        if (!on || keyOf(x) === keyOf(c) || x.spec.stopped || x.status?.phase === 'Sleeping') continue;
        const r = controlPlaneRequests(x);
        on.allocated.cpuMillis += r.cpuMillis;
        on.allocated.memoryBytes += r.memoryBytes;
      }
      const choice = chooseHost({ ...controlPlaneRequests(c), runtime: c.spec.controlPlane?.runtimeClassName ?? 'runc' }, fits);
      if ('host' in choice) this.placedOn.set(keyOf(c), choice.host);
      return choice;
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** The host `c` was placed on, if it was: remembered here, or as its status says. */
  hostOf(c: Obj): string | undefined {
    return this.placedOn.get(keyOf(c)) ?? c.status?.host;
  }

  placed(c: Obj): boolean {
    return this.hostOf(c) !== undefined;
  }

  /** Its placement is over (deleted, or not recorded after all). */
  forget(c: Obj): void {
    this.placedOn.delete(keyOf(c));
  }
}
