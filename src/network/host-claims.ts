import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Cidr, cidrsOverlap, parseCidr } from '../api/ipv4.js';
import { KubicleError } from '../observe/errors.js';

/** What a cluster's node holds on the host besides its bridge, e.g. "service range" or "load balancer pool". */
export interface RangeClaim {
  what: string;
  flag: string;
  cidr: Cidr;
}

const defaultDir = '/run/kubicle/claims';

/**
 * Address ranges several clusters on one host must not share: the host routes each cluster's
 * service range to its bridge and forwards each pool address to its Services, so a second cluster
 * with an overlapping range would silently take the first one's traffic. Each running cluster
 * records its ranges in a file named after its bridge with its process id; claims of processes
 * that are gone do not count. (Pod ranges need no file: they are the bridges' own addresses.)
 * Rejects with Conflict naming the other cluster; resolves to the release function.
 */
export async function claimRanges(owner: string, claims: RangeClaim[], dir = defaultDir): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const file of await readdir(dir)) {
    const other = file.replace(/\.json$/, '');
    if (other === owner || !file.endsWith('.json')) continue;
    const held = await readFile(path.join(dir, file), 'utf8')
      .then((t) => JSON.parse(t) as { pid: number; ranges: { what: string; cidr: string }[] })
      .catch(() => undefined);
    if (!held || !alive(held.pid)) continue;
    for (const c of claims) {
      for (const r of held.ranges) {
        const theirs = parseCidr(r.cidr);
        if (theirs && cidrsOverlap(c.cidr, theirs)) {
          throw new KubicleError('Conflict', `${c.flag} ${c.cidr.text} overlaps the ${r.what} ${theirs.text} of the cluster on bridge ${other} (pid ${held.pid})`);
        }
      }
    }
  }
  const file = path.join(dir, `${owner}.json`);
  await writeFile(file, JSON.stringify({ pid: process.pid, ranges: claims.map((c) => ({ what: c.what, cidr: c.cidr.text })) }));
  return () => rm(file, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
