import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { type Cidr, parseCidr } from '../api/ipv4.js';
import { claimRanges } from './host-claims.js';

const c = (s: string) => parseCidr(s) as Cidr;

test('a live cluster\'s ranges are refused to another bridge; a dead one\'s and released ones are not', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'claims-'));
  const release = await claimRanges('br-a', [{ what: 'load balancer pool', flag: '--load-balancer-pool', cidr: c('127.241.0.0/24') }], dir);
  await assert.rejects(
    claimRanges('br-b', [{ what: 'load balancer pool', flag: '--load-balancer-pool', cidr: c('127.241.0.128/25') }], dir),
    new RegExp(`--load-balancer-pool 127\\.241\\.0\\.128/25 overlaps the load balancer pool 127\\.241\\.0\\.0/24 of the cluster on bridge br-a \\(pid ${process.pid}\\)`),
  );
  (await claimRanges('br-b', [{ what: 'service range', flag: '--service-cidr', cidr: c('10.96.0.0/12') }], dir))();
  await release();
  await (await claimRanges('br-b', [{ what: 'load balancer pool', flag: '--load-balancer-pool', cidr: c('127.241.0.0/24') }], dir))();
  // A claim left by a process that is gone does not count.
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.on('exit', r));
  await writeFile(path.join(dir, 'br-dead.json'), JSON.stringify({ pid: child.pid, ranges: [{ what: 'service range', cidr: '10.96.0.0/12' }] }));
  await (await claimRanges('br-c', [{ what: 'service range', flag: '--service-cidr', cidr: c('10.96.0.0/12') }], dir))();
});
