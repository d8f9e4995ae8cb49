import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SandboxResources, Usage } from './api/types.js';

const root = '/sys/fs/cgroup';
/** Every hierarchy mounted under /sys/fs/cgroup (v1 controllers, name=systemd, and the hybrid layout's `unified`): runc makes the container's cgroup in each. */
function v1Hierarchies(): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}
const cfsPeriod = 100_000;

/**
 * The host's cgroups, v1 (per-controller hierarchies, as on this host's hybrid layout) or v2
 * (unified). Every sandbox has a parent cgroup /kubicle/<sandbox> holding its limits; runc puts
 * each container in a child of it. Usage is read from the same files the kernel keeps, so it is
 * what metering and `kubectl top` see.
 */
export class Cgroups {
  readonly unified = existsSync(path.join(root, 'cgroup.controllers'));

  /** The cgroupsPath runc gets for a container of a sandbox. */
  containerPath(sandboxId: string, containerId: string): string {
    return `/kubicle/${sandboxId}/${containerId}`;
  }

  /** Creates the sandbox's parent cgroup with its limits. Idempotent. */
  async createSandbox(sandboxId: string, r: SandboxResources = {}): Promise<void> {
    const rel = `kubicle/${sandboxId}`;
    if (this.unified) {
      await this.enableV2(['kubicle']);
      const dir = path.join(root, rel);
      await mkdir(dir, { recursive: true });
      await this.enableV2([rel]);
      if (r.memoryBytes) await writeFile(path.join(dir, 'memory.max'), String(r.memoryBytes));
      if (r.cpuMillis) await writeFile(path.join(dir, 'cpu.max'), `${Math.max(1000, Math.round((r.cpuMillis * cfsPeriod) / 1000))} ${cfsPeriod}`);
      if (r.pids) await writeFile(path.join(dir, 'pids.max'), String(r.pids));
      return;
    }
    for (const c of ['cpu', 'cpuacct', 'memory', 'pids']) await mkdir(path.join(root, c, rel), { recursive: true }).catch(() => {});
    if (r.memoryBytes) await writeFile(path.join(root, 'memory', rel, 'memory.limit_in_bytes'), String(r.memoryBytes));
    if (r.cpuMillis) {
      await writeFile(path.join(root, 'cpu', rel, 'cpu.cfs_period_us'), String(cfsPeriod));
      await writeFile(path.join(root, 'cpu', rel, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round((r.cpuMillis * cfsPeriod) / 1000))));
    }
    if (r.pids) await writeFile(path.join(root, 'pids', rel, 'pids.max'), String(r.pids));
  }

  /** Moves a process (a microvm's QEMU) into the sandbox's cgroup, so its limits and usage cover it. */
  async addProcess(sandboxId: string, pid: number): Promise<void> {
    const rel = `kubicle/${sandboxId}`;
    const dirs = this.unified ? [path.join(root, rel)] : ['cpu', 'cpuacct', 'memory', 'pids'].map((c) => path.join(root, c, rel));
    for (const dir of dirs) if (existsSync(dir)) await writeFile(path.join(dir, 'cgroup.procs'), String(pid));
  }

  /** Removes the sandbox's cgroups (they must be empty). Idempotent. */
  async removeSandbox(sandboxId: string): Promise<void> {
    const rel = `kubicle/${sandboxId}`;
    const dirs = this.unified ? [path.join(root, rel)] : v1Hierarchies().map((c) => path.join(root, c, rel));
    for (const dir of dirs) {
      if (!existsSync(dir)) continue;
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await rmdir(path.join(dir, e.name)).catch(() => {});
      await rmdir(dir).catch(() => {});
    }
  }

  /** Whether any cgroup directory of the sandbox is left (for leak checks). */
  leftovers(sandboxId: string): string[] {
    const rel = `kubicle/${sandboxId}`;
    const dirs = this.unified ? [path.join(root, rel)] : v1Hierarchies().map((c) => path.join(root, c, rel));
    return dirs.filter((d) => existsSync(d));
  }

  /** CPU time and working-set memory of a sandbox, or of one container when `containerId` is given. */
  async usage(sandboxId: string, containerId?: string): Promise<Usage> {
    const rel = containerId ? `kubicle/${sandboxId}/${containerId}` : `kubicle/${sandboxId}`;
    const timestamp = new Date().toISOString();
    if (this.unified) {
      const cpu = await readFile(path.join(root, rel, 'cpu.stat'), 'utf8').catch(() => '');
      const usec = Number(/usage_usec (\d+)/.exec(cpu)?.[1] ?? 0);
      const current = Number((await readFile(path.join(root, rel, 'memory.current'), 'utf8').catch(() => '0')).trim());
      const stat = await readFile(path.join(root, rel, 'memory.stat'), 'utf8').catch(() => '');
      const inactive = Number(/inactive_file (\d+)/.exec(stat)?.[1] ?? 0);
      return { cpuNanos: usec * 1000, memoryBytes: Math.max(0, current - inactive), timestamp };
    }
    const cpuNanos = Number((await readFile(path.join(root, 'cpuacct', rel, 'cpuacct.usage'), 'utf8').catch(() => '0')).trim());
    const usage = Number((await readFile(path.join(root, 'memory', rel, 'memory.usage_in_bytes'), 'utf8').catch(() => '0')).trim());
    const stat = await readFile(path.join(root, 'memory', rel, 'memory.stat'), 'utf8').catch(() => '');
    const inactive = Number(/total_inactive_file (\d+)/.exec(stat)?.[1] ?? 0);
    return { cpuNanos, memoryBytes: Math.max(0, usage - inactive), timestamp };
  }

  /** How many times the kernel OOM-killed a process in the container's cgroup. */
  async oomKills(sandboxId: string, containerId: string): Promise<number> {
    const rel = `kubicle/${sandboxId}/${containerId}`;
    const file = this.unified ? path.join(root, rel, 'memory.events') : path.join(root, 'memory', rel, 'memory.oom_control');
    const text = await readFile(file, 'utf8').catch(() => '');
    return Number(/oom_kill (\d+)/.exec(text)?.[1] ?? 0);
  }

  private async enableV2(rels: string[]): Promise<void> {
    for (const rel of rels) {
      const dir = path.join(root, rel);
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(path.dirname(dir), 'cgroup.subtree_control'), '+cpu +memory +pids').catch(() => {});
      await writeFile(path.join(dir, 'cgroup.subtree_control'), '+cpu +memory +pids').catch(() => {});
    }
  }
}
