import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { silentLogger } from '../../src/observe/log.js';
import { Cgroups } from '../../src/sandbox/cgroups.js';
import type { Image } from '../../src/sandbox/images/image-store.js';
import { PodNetworks } from '../../src/sandbox/net/pod-networks.js';
import { GuestChannel } from '../../src/sandbox/runtimes/microvm/guest-channel.js';
import { MicrovmRuntime } from '../../src/sandbox/runtimes/microvm/microvm-runtime.js';
import { hostTscKhz, killQemu, probeAccel, startVm } from '../../src/sandbox/runtimes/microvm/qemu.js';
import { VmTemplates } from '../../src/sandbox/runtimes/microvm/vm-templates.js';

/**
 * bench/microvm: a microvm sandbox with one container, from nothing to the container running,
 * beside a bare boot of the same kernel and initramfs in the same run (QEMU started until the
 * guest agent answers: the floor a booted microvm pays), and beside a bare resume of a saved guest
 * (the floor of one started from a template, ADR 0010). Sandboxes are made both ways: booted
 * (templates off) and resumed (templates on; the first one, which builds the template, is shown
 * apart). Also QEMU's resident memory beyond what the guest itself uses, both ways, and which
 * accelerator the machine gave. Runs the runtime directly (no API server) so the ratios show the
 * runtime's own cost: disks, tap, container disk, mounts, spawn.
 */
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const guest = { kernel: path.join(repo, 'build/guest/vmlinux'), initramfs: path.join(repo, 'build/guest/initramfs.cpio.gz') };
const work = '/tmp/kubicle-bench-microvm';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** QEMU started (booting, or resuming `incoming`) until the guest agent answers. */
async function bare(name: string, accel: 'kvm' | 'tcg', incoming?: string): Promise<number> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  const t0 = performance.now();
  const pid = await startVm({ guest, accel, memoryMiB: 256, cpus: 1, append: 'init_on_free=1', agentSocket: path.join(dir, 'agent.sock'), consoleLog: path.join(dir, 'console.log'), pidFile: path.join(dir, 'qemu.pid'), disks: [], incoming });
  const ch = await GuestChannel.open(path.join(dir, 'agent.sock'), 60_000);
  const ms = performance.now() - t0;
  ch.close();
  await killQemu(pid);
  return ms;
}

/** A sandbox with one container, from nothing to running; its time and memory. */
async function sandbox(rt: MicrovmRuntime, stateDir: string, id: string, image: Image): Promise<{ ms: number; rss: number; guestUsed: number }> {
  const t0 = performance.now();
  await rt.createSandbox({ id, hostname: id });
  const st = await rt.startContainer(id, { name: 'main', image: 'bench', command: ['sleep', '3600'] }, image);
  const ms = performance.now() - t0;
  if (st.state !== 'running') throw new Error(`container not running: ${JSON.stringify(st)}`);
  const over = await overheadMiB(rt, stateDir, id);
  await rt.removeSandbox(id, 0);
  return { ms, ...over };
}

/** QEMU's RSS minus the guest's own used memory (MemTotal - MemAvailable inside), in MiB. */
async function overheadMiB(rt: MicrovmRuntime, stateDir: string, id: string): Promise<{ rss: number; guestUsed: number }> {
  const pid = Number((await readFile(path.join(stateDir, id, 'qemu.pid'), 'utf8')).trim());
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
  const networks = new PodNetworks({ cidr: '10.249.9.0/24', bridge: 'kubbench9', stateDir: work }, log);
  const cgroups = new Cgroups();
  const bootDir = path.join(work, 'booted');
  const resumeDir = path.join(work, 'resumed');
  const booting = new MicrovmRuntime({ stateDir: bootDir, networks, cgroups, accel, templateDir: false }, log);
  const resuming = new MicrovmRuntime({ stateDir: resumeDir, networks, cgroups, accel }, log);
  const image: Image = { id: 'sha256:bench', digest: 'sha256:bench', references: [], layerDirs: [layer], config: {}, size: 0, lastUsed: 0 };
  const floorTemplate = await new VmTemplates(path.join(work, 'floor-templates'), log).template({ guest, accel, memoryMiB: 256, cpus: 1, append: 'init_on_free=1', tscKhz: await hostTscKhz(), diskSerials: [], diskBytes: 0, net: false });
  const first = await sandbox(resuming, resumeDir, 'bench-first', image);
  const runs = { boot: [] as number[], resume: [] as number[], booted: [] as Awaited<ReturnType<typeof sandbox>>[], resumed: [] as Awaited<ReturnType<typeof sandbox>>[] };
  for (let i = 0; i < RUNS; i++) {
    runs.boot.push(await bare(`boot-${i}`, accel));
    runs.resume.push(await bare(`resume-${i}`, accel, floorTemplate));
    runs.booted.push(await sandbox(booting, bootDir, `bench-b${i}`, image));
    runs.resumed.push(await sandbox(resuming, resumeDir, `bench-r${i}`, image));
  }
  const b = median(runs.boot);
  const r = median(runs.resume);
  const pb = median(runs.booted.map((x) => x.ms));
  const pr = median(runs.resumed.map((x) => x.ms));
  const mem = (xs: { rss: number; guestUsed: number }[]) => {
    const rss = median(xs.map((o) => o.rss));
    const used = median(xs.map((o) => o.guestUsed));
    return `QEMU RSS ${rss.toFixed(0)} MiB, guest's own use ${used.toFixed(0)} MiB: overhead ${(rss - used).toFixed(0)} MiB per microvm`;
  };
  const lines = [
    `accelerator: ${accel} (${reason})`,
    `bare QEMU boot to agent ready (floor):          median ${b.toFixed(0)} ms over ${RUNS}`,
    `bare QEMU resume of a saved guest (floor):     median ${r.toFixed(0)} ms over ${RUNS}`,
    `sandbox + container, booted (templates off):   median ${pb.toFixed(0)} ms  (${(pb / b).toFixed(2)}x the boot floor; budget 1.3x)`,
    `sandbox + container, resumed from a template:  median ${pr.toFixed(0)} ms  (${(pr / b).toFixed(2)}x the boot floor, ${(pr / r).toFixed(2)}x the resume floor)`,
    `first sandbox of its shape (builds the template): ${first.ms.toFixed(0)} ms`,
    `booted:  ${mem(runs.booted)}`,
    `resumed: ${mem(runs.resumed)}`,
  ];
  console.log(lines.join('\n'));
  await writeFile(path.join(work, 'result.txt'), `${lines.join('\n')}\n`);
  if (existsSync('/sys/class/net/kubbench9')) execFileSync('ip', ['link', 'del', 'kubbench9']);
}

await main();
process.exit(0);
