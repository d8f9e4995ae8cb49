import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/observe/log.js';
import { Cgroups } from '../../src/sandbox/cgroups.js';
import { PodNetwork } from '../../src/sandbox/net/pod-network.js';
import { GuestChannel } from '../../src/sandbox/runtimes/microvm/guest-channel.js';
import { MicrovmRuntime } from '../../src/sandbox/runtimes/microvm/microvm-runtime.js';
import { probeAccel, startVm } from '../../src/sandbox/runtimes/microvm/qemu.js';

/**
 * bench/microvm: a microvm sandbox with one container, from nothing to the container running,
 * beside a bare boot of the same kernel and initramfs in the same run (QEMU started until the
 * guest agent answers: the floor every microvm pays). Also QEMU's resident memory beyond what the
 * guest itself uses, and which accelerator the machine gave. Runs the runtime directly (no API
 * server) so the ratio shows the runtime's own cost: disks, tap, container disk, mounts, spawn.
 */
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const guest = { kernel: path.join(repo, 'build/guest/vmlinux'), initramfs: path.join(repo, 'build/guest/initramfs.cpio.gz') };
const work = '/tmp/kubicle-bench-microvm';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function bareBoot(i: number, accel: 'kvm' | 'tcg'): Promise<number> {
  const dir = path.join(work, `bare-${i}`);
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const pid = await startVm({ guest, accel, memoryMiB: 256, cpus: 1, append: '', agentSocket: path.join(dir, 'agent.sock'), consoleLog: path.join(dir, 'console.log'), pidFile: path.join(dir, 'qemu.pid'), disks: [] });
  const ch = await GuestChannel.open(path.join(dir, 'agent.sock'), 60_000);
  const ms = performance.now() - t0;
  ch.close();
  process.kill(pid, 'SIGKILL');
  return ms;
}

/** QEMU's RSS minus the guest's own used memory (MemTotal - MemAvailable inside), in MiB. */
async function overheadMiB(rt: MicrovmRuntime, id: string): Promise<{ rss: number; guestUsed: number }> {
  const pid = Number((await readFile(path.join(work, 'sandboxes', id, 'qemu.pid'), 'utf8')).trim());
  const rss = Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  const mem = (await rt.exec(id, 'main', ['cat', '/proc/meminfo'], 5000)).output;
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(mem)?.[1] ?? 0);
  return { rss, guestUsed: (kb('MemTotal') - kb('MemAvailable')) / 1024 };
}

async function main(): Promise<void> {
  await rm(work, { recursive: true, force: true });
  const layer = path.join(work, 'layer');
  await mkdir(path.join(layer, 'bin'), { recursive: true });
  execFileSync('cp', ['/usr/bin/busybox', path.join(layer, 'bin/busybox')]);
  for (const a of ['sh', 'sleep', 'cat']) execFileSync('ln', ['-sf', 'busybox', path.join(layer, 'bin', a)]);
  const { accel, reason } = await probeAccel(guest);
  const log = silentLogger;
  const network = new PodNetwork({ cidr: '10.249.9.0/24', bridge: 'kubbench9', stateDir: path.join(work, 'ipam') }, log);
  const rt = new MicrovmRuntime({ stateDir: path.join(work, 'sandboxes'), network, cgroups: new Cgroups(), accel }, log);
  const image = { id: 'sha256:bench', digest: 'sha256:bench', references: [], layerDirs: [layer], config: {}, size: 0, lastUsed: 0 };
  const bare: number[] = [];
  const pod: number[] = [];
  const over: { rss: number; guestUsed: number }[] = [];
  for (let i = 0; i < RUNS; i++) {
    bare.push(await bareBoot(i, accel));
    const id = `bench-${i}`;
    const t0 = performance.now();
    await rt.createSandbox({ id, hostname: id });
    const st = await rt.startContainer(id, { name: 'main', image: 'bench', command: ['sleep', '3600'] }, image);
    pod.push(performance.now() - t0);
    if (st.state !== 'running') throw new Error(`container not running: ${JSON.stringify(st)}`);
    over.push(await overheadMiB(rt, id));
    await rt.removeSandbox(id, 0);
  }
  const b = median(bare);
  const p = median(pod);
  const rss = median(over.map((o) => o.rss));
  const used = median(over.map((o) => o.guestUsed));
  const lines = [
    `accelerator: ${accel} (${reason})`,
    `bare QEMU boot to agent ready (floor): median ${b.toFixed(0)} ms over ${RUNS}`,
    `microvm sandbox + container running:  median ${p.toFixed(0)} ms  (${(p / b).toFixed(2)}x the floor; budget 1.3x)`,
    `QEMU RSS ${rss.toFixed(0)} MiB, guest's own use ${used.toFixed(0)} MiB: overhead ${(rss - used).toFixed(0)} MiB per microvm`,
  ];
  console.log(lines.join('\n'));
  await writeFile(path.join(work, 'result.txt'), `${lines.join('\n')}\n`);
  if (existsSync('/sys/class/net/kubbench9')) execFileSync('ip', ['link', 'del', 'kubbench9']);
}

await main();
process.exit(0);
