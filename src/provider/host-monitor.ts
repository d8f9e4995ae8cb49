import { setTimeout as delay } from 'node:timers/promises';
import { providerGroup } from '../api/kinds/provider.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { SandboxClient } from '../sandbox/api/client.js';
import type { HostInfo } from '../sandbox/api/types.js';

const hostsPath = resourcePath({ group: providerGroup, version: 'v1alpha1', plural: 'hosts' });

export interface HostMonitorOptions {
  /** The Host's name (registered already: see hosts.ts). */
  name: string;
  agent: SandboxClient;
  /** How often the agent is asked (a heartbeat each time it answers). */
  intervalMs: number;
  /** How long the agent may go unanswered before its Host turns NotReady. */
  graceMs: number;
}

/**
 * A Host as its agent shows it (DESIGN §1): every interval the agent is asked what its machine
 * has (`GET /v1/host`), and the Host's status gets its capacity, its runtimes and a Ready
 * condition whose lastHeartbeatTime is the last answer, as a Node's status does for its kubelet.
 * An agent unanswered for the grace period turns the Host Ready=False (AgentUnreachable); its
 * next answer turns it back. The Host is kept when the provider stops: operators see a host
 * that went away. One the operator deleted is not made again: it was taken out of service.
 */
export class HostMonitor {
  private lastAnswer = 0;
  private ready: boolean | undefined;
  private transition = new Date().toISOString();

  constructor(
    private readonly client: KubeClient,
    private readonly opts: HostMonitorOptions,
    private readonly log: Logger,
  ) {}

  async run(signal: AbortSignal): Promise<void> {
    this.lastAnswer = Date.now();
    while (!signal.aborted) {
      await this.beat().catch((err) => this.log.warn('host status not written', { host: this.opts.name, err }));
      await delay(this.opts.intervalMs, undefined, { signal }).catch(() => {});
    }
  }

  /** One heartbeat: ask the agent, write what it said (or that it did not answer in time). */
  async beat(): Promise<void> {
    // An answer later than the grace period is as good as none (a stopped agent never answers).
    const info = await this.opts.agent.host(AbortSignal.timeout(this.opts.graceMs)).catch((err: Error) => err);
    const now = new Date();
    if (!(info instanceof Error)) this.lastAnswer = now.getTime();
    const ready = !(info instanceof Error) || now.getTime() - this.lastAnswer < this.opts.graceMs;
    if (ready !== this.ready) {
      if (this.ready !== undefined) this.log.info(ready ? 'host ready' : 'host not ready', { host: this.opts.name });
      this.transition = now.toISOString();
    }
    this.ready = ready;
    const condition = ready
      ? { type: 'Ready', status: 'True', reason: 'AgentReady', message: 'the host agent answers' }
      : { type: 'Ready', status: 'False', reason: 'AgentUnreachable', message: `the host agent has not answered for ${Math.round((now.getTime() - this.lastAnswer) / 1000)} s: ${(info as Error).message}` };
    const status: Obj = { conditions: [{ ...condition, lastHeartbeatTime: new Date(this.lastAnswer).toISOString(), lastTransitionTime: this.transition }] };
    if (!(info instanceof Error)) Object.assign(status, statusOf(info));
    await this.write(status);
  }

  private async write(status: Obj): Promise<void> {
    await this.client.patch(`${hostsPath}/${this.opts.name}/status`, { status }).catch((err) => {
      if (!isCode(err, 'NotFound')) throw err;
    });
  }
}

/** The agent's answer in a Node's terms: quantities as Kubernetes writes them. */
function statusOf(info: HostInfo): Obj {
  const cpu = info.capacity.cpuMillis % 1000 === 0 ? String(info.capacity.cpuMillis / 1000) : `${info.capacity.cpuMillis}m`;
  const mi = (bytes: number) => `${Math.floor(bytes / 2 ** 20)}Mi`;
  return {
    capacity: { cpu, memory: mi(info.capacity.memoryBytes) },
    availableMemory: mi(info.availableMemoryBytes),
    runtimes: info.runtimes,
    hostname: info.hostname,
  };
}
