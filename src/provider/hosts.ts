import { providerGroup } from '../api/kinds/provider.js';
import { parseQuantity } from '../api/quantity.js';
import { Informer } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { SandboxClient } from '../sandbox/api/client.js';
import type { SandboxStatus } from '../sandbox/api/types.js';
import { HostMonitor } from './host-monitor.js';
import type { Amount, HostFit } from './placement.js';
import { clusterLabel, cpuLabel, memoryLabel } from './sandbox-gateway.js';

const hostsPath = resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'hosts' });
const zoneLabel = 'topology.kubernetes.io/zone';
/** How long placement waits for a host's list of sandboxes before it passes the host over. */
const answerMs = 3000;
/**
 * What the provider waits for any one call to a host's agent (making a sandbox, stopping a
 * container with its grace period, pulling the small control-plane image): beyond it the host
 * is as good as gone, and the cluster controller's few workers must not wait on it forever.
 */
const callTimeoutMs = 120_000;
/**
 * How far placement may commit a host's capacity when its Host does not say
 * (`spec.allocationRatio`): OpenStack Nova's defaults. Limits are ceilings, mostly unused by
 * idle control planes and pods; CPU is shared by time, memory is not, hence the difference.
 */
export const defaultAllocationRatio = { cpu: 16, memory: 1.5 };

/**
 * Registers a host agent with the provider (what `kubicle agent --provider` and the provider's
 * own agent do at start): its Host, made with its zone and where its Sandbox API listens, or
 * brought up to date if it exists — what an operator set on it (cordoning) is kept.
 */
export async function registerHost(client: KubeClient, host: { name: string; zone: string; socket: string }): Promise<void> {
  const spec = { agent: { socket: host.socket } };
  try {
    await client.create(hostsPath, { apiVersion: `${providerGroup}/v1alpha1`, kind: 'Host', metadata: { name: host.name, labels: { [zoneLabel]: host.zone } }, spec });
  } catch (err) {
    if (!isCode(err, 'AlreadyExists')) throw err;
    await client.patch(`${hostsPath}/${host.name}`, { metadata: { labels: { [zoneLabel]: host.zone } }, spec });
  }
}

export interface HostsOptions {
  /** How often each agent is asked for its Host's status, and how long it may go unanswered. */
  intervalMs: number;
  graceMs: number;
}

interface Watched {
  socket: string;
  agent: SandboxClient;
  monitor: HostMonitor;
  stop: AbortController;
}

/**
 * The provider's hosts (DESIGN §1): every registered Host whose agent it can reach, watched —
 * each gets a HostMonitor keeping its status — and lent out to those that place and meter
 * workloads: `agent(name)` is the host's Sandbox API, `fits()` what placement weighs. A Host the
 * operator deletes is forgotten at once; what runs there stays, unseen, until it comes back.
 */
export class Hosts {
  private readonly informer: Informer;
  private readonly watched = new Map<string, Watched>();
  private signal?: AbortSignal;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: HostsOptions,
    private readonly log: Logger,
  ) {
    this.informer = new Informer(client, hostsPath, log);
    this.informer.on({ add: (h) => this.follow(h), update: (_, h) => this.follow(h), delete: (h) => this.forget(h.metadata.name) });
  }

  /** Watches the Hosts until the signal aborts; `started` resolves once each known one was asked once. */
  run(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    const running = this.informer.run(signal);
    signal.addEventListener('abort', () => {
      for (const name of [...this.watched.keys()]) this.forget(name);
    });
    return running;
  }

  /** After the Hosts were listed and each one's agent asked: a Ready host is Ready before anything is placed. */
  async started(): Promise<void> {
    await this.informer.synced;
    await Promise.all([...this.watched.values()].map((w) => w.monitor.beat().catch(() => {})));
  }

  names(): string[] {
    return [...this.watched.keys()];
  }

  /** The Sandbox API of a registered host; Unavailable when there is none of that name. */
  agent(name: string): SandboxClient {
    return this.get(name).agent;
  }

  /** Where a registered host's Sandbox API listens. */
  socket(name: string): string {
    return this.get(name).socket;
  }

  /** Whether a host's Ready condition is True: its agent answered within the grace period. */
  ready(name: string): boolean {
    return ((this.informer.get(name)?.status?.conditions ?? []) as Obj[]).some((c) => c.type === 'Ready' && c.status === 'True');
  }

  /** Since when (ms since the epoch) a host has not been Ready, as its Ready condition's last transition says; undefined while Ready or unknown. */
  notReadySince(name: string): number | undefined {
    const ready = ((this.informer.get(name)?.status?.conditions ?? []) as Obj[]).find((c) => c.type === 'Ready');
    if (!ready || ready.status === 'True') return undefined;
    const at = Date.parse(String(ready.lastTransitionTime));
    return Number.isNaN(at) ? undefined : at;
  }

  /** A host's capacity as its Host shows it (a virtual node offers no more), if known. */
  capacity(name: string): { cpu: string; memory: string } | undefined {
    const c = this.informer.get(name)?.status?.capacity;
    return c?.cpu && c?.memory ? { cpu: String(c.cpu), memory: String(c.memory) } : undefined;
  }

  /**
   * Every registered host as placement weighs it: its capacity times its allocation ratio, and
   * its pods' limits asked of its agent now (a host whose agent does not answer is not ready). Control planes are not counted here: their
   * cluster controller knows which run where, including those placed a moment ago.
   */
  async fits(): Promise<HostFit[]> {
    return Promise.all(
      [...this.watched].map(async ([name, w]) => {
        const h = this.informer.get(name) as Obj;
        const ready = this.ready(name);
        // Placement waits for no host: one that does not answer soon takes nothing this time.
        const pods = ready ? await w.agent.listSandboxes(undefined, AbortSignal.timeout(answerMs)).catch(() => undefined) : undefined;
        return {
          name,
          ready: ready && pods !== undefined,
          unschedulable: h.spec?.unschedulable === true,
          runtimes: (h.status?.runtimes ?? []) as string[],
          zone: h.metadata.labels?.[zoneLabel],
          capacity: allocatable(h),
          allocated: limitsOf((pods ?? []).filter((s) => s.labels?.[clusterLabel])),
        };
      }),
    );
  }

  /**
   * What a host may allocate and what its sandboxes may use now: its pods, and its control planes
   * that run (a sleeping one's sandbox stays, without a process). Undefined while its capacity is
   * unknown; rejects if its agent does not answer soon.
   */
  async room(name: string): Promise<{ capacity: Amount; allocated: Amount } | undefined> {
    const h = this.informer.get(name);
    if (!h?.status?.capacity) return undefined;
    const all = await this.agent(name).listSandboxes(undefined, AbortSignal.timeout(answerMs));
    return { capacity: allocatable(h), allocated: limitsOf(all.filter((s) => s.labels?.[clusterLabel] || s.containers.some((c) => c.state === 'running'))) };
  }

  private get(name: string): Watched {
    const w = this.watched.get(name);
    if (!w) throw new KubicleError('Unavailable', `host ${name} is not registered with the provider`);
    return w;
  }

  private follow(h: Obj): void {
    const name = h.metadata.name as string;
    const socket = h.spec?.agent?.socket as string | undefined;
    if (this.watched.get(name)?.socket === socket) return;
    this.forget(name);
    if (!socket || !this.signal || this.signal.aborted) return;
    const agent = new SandboxClient({ socketPath: socket }, callTimeoutMs);
    const stop = new AbortController();
    const monitor = new HostMonitor(this.client, { name, agent, intervalMs: this.opts.intervalMs, graceMs: this.opts.graceMs }, this.log.with({ host: name }));
    this.watched.set(name, { socket, agent, monitor, stop });
    void monitor.run(stop.signal);
    this.log.info('host followed', { host: name, socket });
  }

  private forget(name: string): void {
    const w = this.watched.get(name);
    if (!w) return;
    this.watched.delete(name);
    w.stop.abort();
  }
}

/** A host's capacity times its allocation ratio. */
function allocatable(h: Obj): Amount {
  const ratio = { ...defaultAllocationRatio, ...(h.spec?.allocationRatio ?? {}) };
  return { cpuMillis: quantity(h.status?.capacity?.cpu) * 1000 * ratio.cpu, memoryBytes: quantity(h.status?.capacity?.memory) * ratio.memory };
}

/** What sandboxes that are up may use, by the limits their labels carry. */
function limitsOf(sandboxes: SandboxStatus[]): Amount {
  const sum = { cpuMillis: 0, memoryBytes: 0 };
  for (const s of sandboxes) {
    if (s.state !== 'ready') continue;
    sum.cpuMillis += Number(s.labels?.[cpuLabel] ?? 0);
    sum.memoryBytes += Number(s.labels?.[memoryLabel] ?? 0);
  }
  return sum;
}

function quantity(q: unknown): number {
  try {
    return q === undefined ? 0 : parseQuantity(String(q));
  } catch {
    return 0;
  }
}
