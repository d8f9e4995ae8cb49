import { readdirSync, readFileSync } from 'node:fs';

/** Process figures from /proc for the tenancy benchmarks. */

/** Resident set size. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** CPU time used so far (user + system), in milliseconds: /proc's clock ticks are 10 ms. */
export function cpuMs(pid: number): number {
  // The command may hold spaces or parentheses: the fields start after the last ')'.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Proportional set size: shared pages (the Node.js binary, libraries) split among the processes mapping them. */
export function pssMiB(pid: number): number {
  const m = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** The processes whose command line contains `text`. */
export function pidsMatching(text: string): number[] {
  return readdirSync('/proc')
    .filter((x) => /^\d+$/.test(x))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** The tenant control planes running on this machine (the path is their sandbox image's). */
export const controlPlanePids = () => pidsMatching('/opt/kubicle/bin/kubicle.js');

/** The `kubicle agent` (host agent) process holding `dataDir`. */
export function agentPid(dataDir: string): number {
  return pidsMatching(dataDir).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('agent')) as number;
}

/** The `kubicle server` process holding `dataDir`. */
export function providerPid(dataDir: string): number {
  return pidsMatching(dataDir).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server')) as number;
}

/** CPU seconds (user + system) a process has used, or 0 if it is gone. */
function cpuSeconds(pid: number): number {
  try {
    // Fields after the parenthesised command: utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** The machine's busy CPU seconds so far (all cores), from /proc/stat. */
function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  return (f.reduce((s, x) => s + x, 0) - f[3] - f[4]) / 100;
}

/**
 * Where the machine's CPU goes over `windowMs`: each group's processes (resolved at the start)
 * in cores busy (1 = one core), and "other" for the rest, which includes short-lived children
 * (runc, nft) and everything else on the machine.
 */
export async function cpuByGroup(groups: Record<string, number[]>, windowMs: number): Promise<Record<string, number>> {
  const before = Object.fromEntries(Object.entries(groups).map(([g, pids]) => [g, pids.reduce((s, p) => s + cpuSeconds(p), 0)]));
  const m0 = machineBusySeconds();
  await new Promise((r) => setTimeout(r, windowMs));
  const out: Record<string, number> = {};
  let grouped = 0;
  for (const [g, pids] of Object.entries(groups)) {
    out[g] = (pids.reduce((s, p) => s + cpuSeconds(p), 0) - before[g]) / (windowMs / 1000);
    grouped += out[g];
  }
  out.other = Math.max(0, (machineBusySeconds() - m0) / (windowMs / 1000) - grouped);
  return out;
}
