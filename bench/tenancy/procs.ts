import { readdirSync, readFileSync } from 'node:fs';

/** Process figures from /proc for the tenancy benchmarks. */

/** Resident set size. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
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

/** The `kubicle server` process holding `dataDir`. */
export function providerPid(dataDir: string): number {
  return pidsMatching(dataDir).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server')) as number;
}
