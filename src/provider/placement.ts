/** CPU (millicores) and memory (bytes): what a sandbox may use, or a host has. */
export interface Amount {
  cpuMillis: number;
  memoryBytes: number;
}

/** A host as placement weighs it: what it is, what it has, and what is already placed there. */
export interface HostFit {
  name: string;
  ready: boolean;
  /** Cordoned by an operator: what runs stays, nothing new comes. */
  unschedulable: boolean;
  runtimes: string[];
  /** Its topology.kubernetes.io/zone, if it has one. */
  zone?: string;
  /** What may be allocated there (its allocation ratio applied). */
  capacity: Amount;
  /** What is placed there and can run now (sleeping control planes cannot), as each is weighed. */
  allocated: Amount;
}

/** What is to be placed: what it is weighed at, and the runtime it needs. */
export interface Demand extends Amount {
  runtime: string;
}

/**
 * The host for a new workload (DESIGN §2.3), or why there is none. A host takes the workload
 * only if it fits beside what is already allocated there, within its capacity. Of the hosts
 * that can, the least allocated wins — the fuller of its CPU and memory shares after the
 * placement, lowest first — so workloads spread and one host's failure takes the fewest; ties go
 * by name, so the same state places the same way. The refusal counts each host's first reason, as
 * the scheduler's "0/N nodes are available" does.
 */
export function chooseHost(demand: Demand, hosts: HostFit[], taken: ReadonlySet<string> = new Set()): { host: string } | { refusal: string } {
  const reasons = new Map<string, number>();
  const fit: { name: string; score: number }[] = [];
  for (const h of hosts) {
    const reason = taken.has(h.name)
      ? 'already running a replica'
      : !h.ready
        ? 'not ready'
      : h.unschedulable
        ? 'unschedulable'
        : !h.runtimes.includes(demand.runtime)
          ? `no ${demand.runtime} runtime`
          : h.allocated.cpuMillis + demand.cpuMillis > h.capacity.cpuMillis
            ? 'insufficient cpu'
            : h.allocated.memoryBytes + demand.memoryBytes > h.capacity.memoryBytes
              ? 'insufficient memory'
              : undefined;
    if (reason) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    else fit.push({ name: h.name, score: Math.max((h.allocated.cpuMillis + demand.cpuMillis) / h.capacity.cpuMillis, (h.allocated.memoryBytes + demand.memoryBytes) / h.capacity.memoryBytes) });
  }
  if (fit.length) return { host: fit.sort((a, b) => a.score - b.score || (a.name < b.name ? -1 : 1))[0].name };
  const why = [...reasons].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([r, n]) => `${n} ${r}`);
  return { refusal: `0/${hosts.length} hosts can take it${why.length ? `: ${why.join(', ')}` : ''}` };
}

/**
 * Hosts for `count` replicas of one workload (a control plane's), one host each, so that losing
 * a host loses at most one replica. The first goes where chooseHost puts it; each next one to a
 * host holding none, in a zone holding none when such a host can take it — zones spread as far as
 * the hosts allow, as a topology spread constraint with whenUnsatisfiable: ScheduleAnyway — and
 * weighed with the replicas placed before it. `placed` are the hosts of replicas already running
 * (when one is replaced), weighed and avoided the same way. Refused as a whole if any replica
 * finds no host.
 */
export function chooseHosts(demand: Demand, hosts: HostFit[], count: number, placed: string[] = []): { hosts: string[] } | { refusal: string } {
  const weighed = hosts.map((h) => ({ ...h, allocated: { ...h.allocated } }));
  const chosen: string[] = [];
  const take = (name: string) => {
    const h = weighed.find((x) => x.name === name);
    if (h) {
      h.allocated.cpuMillis += demand.cpuMillis;
      h.allocated.memoryBytes += demand.memoryBytes;
    }
    chosen.push(name);
  };
  for (const name of placed) take(name);
  const total = placed.length + count;
  for (let i = placed.length; i < total; i++) {
    const zones = new Set(chosen.map((n) => weighed.find((h) => h.name === n)?.zone).filter((z) => z !== undefined));
    const elsewhere = new Set([...chosen, ...weighed.filter((h) => h.zone !== undefined && zones.has(h.zone)).map((h) => h.name)]);
    let choice = chooseHost(demand, weighed, elsewhere);
    if ('refusal' in choice) choice = chooseHost(demand, weighed, new Set(chosen));
    if ('refusal' in choice) return { refusal: total > 1 ? `replica ${i + 1} of ${total}: ${choice.refusal}` : choice.refusal };
    take(choice.host);
  }
  return { hosts: chosen.slice(placed.length) };
}
