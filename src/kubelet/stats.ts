import { readFile } from 'node:fs/promises';
import type { Obj } from '../client/kube-client.js';
import type { SandboxClient } from '../sandbox/api/client.js';

/** CPU of one thing at one time, as the kubelet's Summary API words it. */
export interface CpuStats {
  time: string;
  /** CPU used per second over the last window, in billionths of a core. */
  usageNanoCores: number;
  usageCoreNanoSeconds: number;
}

export interface MemoryStats {
  time: string;
  workingSetBytes: number;
}

export interface ContainerStats {
  name: string;
  cpu: CpuStats;
  memory: MemoryStats;
}

export interface PodStats {
  podRef: { name: string; namespace: string; uid: string };
  containers: ContainerStats[];
}

/** The part of the kubelet's Summary API (`/stats/summary`) that resource metrics need. */
export interface Summary {
  node: { nodeName: string; cpu: CpuStats; memory: MemoryStats };
  pods: PodStats[];
}

interface Sample {
  cpuNanos: number;
  at: number;
  rate?: number;
}

/** A rate needs two samples this far apart; fresher asks reuse the last rate. */
const minWindowMs = 1000;

/**
 * Usage of the node and of each running container, from the host agent's cgroup figures
 * (cumulative CPU, working set) and the host's /proc for the node. CPU becomes a rate against
 * the previous sample; the first request samples twice, a second apart.
 */
export class StatsProvider {
  private readonly samples = new Map<string, Sample>();

  constructor(
    private readonly agent: SandboxClient,
    private readonly nodeName: string,
    private readonly pods: () => Obj[],
  ) {}

  async summary(): Promise<Summary> {
    let raw = await this.collect();
    if (raw.some((r) => !this.samples.has(r.key))) {
      this.remember(raw);
      await new Promise((r) => setTimeout(r, minWindowMs));
      raw = await this.collect();
    }
    const rates = this.remember(raw);
    const time = new Date().toISOString();
    const stats = (key: string, cpuNanos: number, memory: number): { cpu: CpuStats; memory: MemoryStats } => ({
      cpu: { time, usageNanoCores: Math.round(rates.get(key) ?? 0), usageCoreNanoSeconds: cpuNanos },
      memory: { time, workingSetBytes: memory },
    });
    const node = raw.find((r) => r.key === 'node');
    const pods = new Map<string, PodStats>();
    for (const r of raw) {
      if (!r.pod || !r.container) continue;
      const entry: PodStats = pods.get(r.pod.metadata.uid) ?? { podRef: { name: r.pod.metadata.name, namespace: r.pod.metadata.namespace, uid: r.pod.metadata.uid }, containers: [] };
      entry.containers.push({ name: r.container, ...stats(r.key, r.cpuNanos, r.memory) });
      pods.set(r.pod.metadata.uid, entry);
    }
    return { node: { nodeName: this.nodeName, ...stats('node', node?.cpuNanos ?? 0, node?.memory ?? 0) }, pods: [...pods.values()] };
  }

  /** Stores the new samples and returns each one's CPU rate in nanocores. */
  private remember(raw: { key: string; cpuNanos: number; at: number }[]): Map<string, number> {
    const rates = new Map<string, number>();
    const live = new Set<string>();
    for (const r of raw) {
      live.add(r.key);
      const prev = this.samples.get(r.key);
      if (prev && r.at - prev.at < minWindowMs) {
        if (prev.rate !== undefined) rates.set(r.key, prev.rate);
        continue;
      }
      const rate = prev ? (Math.max(0, r.cpuNanos - prev.cpuNanos) / (r.at - prev.at)) * 1e3 : undefined;
      this.samples.set(r.key, { cpuNanos: r.cpuNanos, at: r.at, rate });
      if (rate !== undefined) rates.set(r.key, rate);
    }
    for (const k of this.samples.keys()) if (!live.has(k)) this.samples.delete(k);
    return rates;
  }

  private async collect(): Promise<{ key: string; pod?: Obj; container?: string; cpuNanos: number; memory: number; at: number }[]> {
    const out: { key: string; pod?: Obj; container?: string; cpuNanos: number; memory: number; at: number }[] = [await this.host()];
    const byUid = new Map(this.pods().map((p) => [p.metadata.uid, p]));
    const sandboxes = await this.agent.listSandboxes();
    await Promise.all(
      sandboxes.flatMap((sb) => {
        const pod = byUid.get(sb.id);
        if (!pod) return [];
        return sb.containers
          .filter((c) => c.state === 'running')
          .map(async (c) => {
            const u = await this.agent.usage(sb.id, c.name).catch(() => undefined);
            if (u) out.push({ key: `${sb.id}/${c.name}/${c.id}`, pod, container: c.name, cpuNanos: u.cpuNanos, memory: u.memoryBytes, at: Date.now() });
          });
      }),
    );
    return out;
  }

  /** The whole host: busy CPU time from /proc/stat, memory in use from /proc/meminfo. */
  private async host(): Promise<{ key: string; cpuNanos: number; memory: number; at: number }> {
    const stat = (await readFile('/proc/stat', 'utf8')).split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = stat;
    // /proc/stat counts USER_HZ ticks: 100 per second on Linux.
    const busyTicks = user + nice + system + irq + softirq + (steal ?? 0);
    const meminfo = await readFile('/proc/meminfo', 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0);
    return { key: 'node', cpuNanos: busyTicks * 1e7, memory: (kb('MemTotal') - kb('MemAvailable')) * 1024, at: Date.now() };
  }
}
