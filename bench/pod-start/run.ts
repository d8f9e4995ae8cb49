import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KubeClient, type Obj } from '../../src/client/kube-client.js';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { freePort } from '../../test/support/etcd.js';
import { cleanup, startKubicle } from '../../test/support/kubicle.js';
import { f1, summary } from '../api/stats.js';
import { runBench } from '../main.js';

/**
 * bench/pod-start: create → Running through the whole stack (API server, scheduler, kubelet, host
 * agent, conmon, runc) for one pod at a time and for a burst of 50, image cached, beside the floor
 * measured in the same run: a bare `runc run -d` of the same busybox layer and command. Also the
 * host memory each sandbox costs (conmon RSS and the kubicle process's growth per sandbox).
 */
const BURST = Number(process.env.BENCH_BURST ?? 50);
const SINGLES = Number(process.env.BENCH_SINGLES ?? 10);

function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // gone meanwhile (conmon's first process exits at once)
  }
}

/** CPU time all cores spent busy since boot (ms): user, nice, system, irq, softirq, steal. */
function systemBusyMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const hz = 100; // USER_HZ on Linux
  return ((f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 1000) / hz;
}

/** CPU time one process (all its threads) has used (ms), and that of the children it has waited for. */
function processCpuMs(pid: number): { own: number; children: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ').map(Number);
  return { own: ((f[11] + f[12]) * 1000) / 100, children: ((f[13] + f[14]) * 1000) / 100 };
}

/** The kubicle processes of a run (the server, and the host agent where it runs apart): their pids, the server's first. */
function kubiclePids(dataDir: string): number[] {
  const found: { pid: number; agent: boolean }[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => /(kubicle|cli\/main)\.js$/.test(a)) && argv.some((a) => a.startsWith(dataDir))) found.push({ pid: Number(p), agent: argv.includes('agent') });
    } catch {}
  }
  if (!found.length) throw new Error('kubicle process not found');
  return found.sort((a, b) => Number(a.agent) - Number(b.agent)).map((f) => f.pid);
}

async function main() {
  const registryPort = await freePort();
  const image = `127.0.0.1:${registryPort}/kubicle/busybox:1`;
  const k = await startKubicle({ args: ['--node', 'local', '--load-balancer-pool', '127.241.19.0/28', '--node-name', 'bench-node', '--pod-cidr', '10.247.0.0/24', '--service-cidr', '10.119.0.0/16', '--bridge', 'kubbench0', '--registry-port', String(registryPort), '--kubelet-port', String(await freePort())] });
  const { ca, cert, key } = await k.creds();
  const client = new KubeClient({ server: k.url, caPem: ca, certPem: cert, keyPem: key });
  const ns = 'bench';
  await client.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  for (let i = 0; i < 100; i++) {
    const nodes = await client.get('/api/v1/nodes');
    if (nodes.items.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const running = new Map<string, (t: number) => void>();
  const abort = new AbortController();
  void client.watch(
    `/api/v1/namespaces/${ns}/pods?watch=true`,
    (ev) => {
      const p = ev.object as Obj;
      if (p.status?.phase === 'Running') running.get(p.metadata.name)?.(performance.now());
    },
    abort.signal,
  );
  const podSpec = (name: string) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns },
    spec: { terminationGracePeriodSeconds: 0, containers: [{ name: 'c', image, imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'] }] },
  });
  const start = async (name: string): Promise<number> => {
    const t0 = performance.now();
    const done = new Promise<number>((resolve) => running.set(name, resolve));
    await client.create(`/api/v1/namespaces/${ns}/pods`, podSpec(name));
    return (await done) - t0;
  };
  const clear = async () => {
    await client.delete(`/api/v1/namespaces/${ns}/pods?gracePeriodSeconds=0`);
    for (let i = 0; i < 600; i++) {
      if (!(await client.get(`/api/v1/namespaces/${ns}/pods`)).items.length) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // Warm-up: pulls and unpacks the image once.
  await start('warmup');
  await clear();

  const singles: number[] = [];
  for (let i = 0; i < SINGLES; i++) {
    singles.push(await start(`single-${i}`));
    await clear();
  }
  const [pid, agentPid] = kubiclePids(k.dataDir);
  const rss = () => rssKiB(pid) + (agentPid ? rssKiB(agentPid) : 0);
  const before = rss();
  const cpu0 = { all: systemBusyMs(), server: processCpuMs(pid), agent: agentPid ? processCpuMs(agentPid) : undefined };
  const burstStart = performance.now();
  const burst = await Promise.all(Array.from({ length: BURST }, (_, i) => start(`burst-${i}`)));
  const burstWall = performance.now() - burstStart;
  const agentCpu = agentPid ? processCpuMs(agentPid) : undefined;
  const burstCpu = {
    all: systemBusyMs() - cpu0.all,
    server: processCpuMs(pid).own - cpu0.server.own,
    agent: agentCpu && cpu0.agent ? agentCpu.own - cpu0.agent.own : 0,
    agentChildren: agentCpu && cpu0.agent ? agentCpu.children - cpu0.agent.children : 0,
  };
  // CLOCK_MONOTONIC in µs, as --cpu-prof timestamps its samples, so a profile can be cut to the burst.
  const endUs = process.hrtime.bigint() / 1000n;
  if (process.env.KUBICLE_NODE_ARGS?.includes('--cpu-prof')) process.stderr.write(`burst window (monotonic µs): ${endUs - BigInt(Math.round(burstWall * 1000))} ${endUs}\n`);
  const conmons = execFileSync('pgrep', ['-f', `conmon.*${k.dataDir}`]).toString().trim().split('\n').filter(Boolean).map(Number);
  const conmonRss = conmons.map(rssKiB).filter((r) => r > 0);
  const conmonKiB = conmonRss.reduce((a, b) => a + b, 0) / Math.max(1, conmonRss.length);
  const after = rss();
  await clear();

  // The floor: bare runc run -d of the same layer and command, one at a time and in a burst.
  const layers = path.join(k.dataDir, 'agent/images/layers');
  const layer = path.join(layers, readdirSync(layers)[0]);
  const floorDir = path.join(os.tmpdir(), `kubicle-bench-runc-${process.pid}`);
  const runcRoot = path.join(floorDir, 'state');
  let bareBurstCpu = 0;
  const bare = async (n: number, concurrent: boolean): Promise<number[]> => {
    const dirs = Array.from({ length: n }, (_, i) => {
      const dir = path.join(floorDir, `b${i}`);
      for (const d of ['rootfs', 'upper', 'work']) mkdirSync(path.join(dir, d), { recursive: true });
      execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${layer},upperdir=${dir}/upper,workdir=${dir}/work`, `${dir}/rootfs`]);
      spawnSync('runc', ['spec', '--bundle', dir]);
      const spec = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
      spec.process.terminal = false;
      spec.process.args = ['sleep', '3600'];
      spec.root = { path: `${dir}/rootfs`, readonly: false };
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
      return dir;
    });
    const times: number[] = [];
    const busy0 = systemBusyMs();
    if (concurrent) {
      // All at once, each timed from the burst's start to its \`runc run -d\` returning, which
      // it does once the container runs.
      const t0 = performance.now();
      await Promise.all(
        dirs.map(
          (dir, i) =>
            new Promise<void>((resolve, reject) =>
              spawn('runc', ['--root', runcRoot, 'run', '-d', '--bundle', dir, `bare${i}`], { stdio: 'ignore' }).on('exit', (code) => {
                times.push(performance.now() - t0);
                code === 0 ? resolve() : reject(new Error(`runc run -d bare${i} exited ${code}`));
              }),
            ),
        ),
      );
    } else {
      dirs.forEach((dir, i) => {
        const t0 = performance.now();
        spawnSync('runc', ['--root', runcRoot, 'run', '-d', '--bundle', dir, `bare${i}`], { stdio: 'ignore' });
        times.push(performance.now() - t0);
      });
    }
    if (concurrent) bareBurstCpu = systemBusyMs() - busy0;
    dirs.forEach((dir, i) => {
      spawnSync('runc', ['--root', runcRoot, 'delete', '-f', `bare${i}`]);
      spawnSync('umount', ['-l', `${dir}/rootfs`]);
    });
    rmSync(floorDir, { recursive: true, force: true });
    return times;
  };
  const bareSingle = summary(await bare(SINGLES, false));
  const bareBurst = summary(await bare(BURST, true));

  abort.abort();
  const agent = new SandboxClient({ socketPath: path.join(k.dataDir, 'agent.sock') });
  for (let i = 0; i < 600 && (await agent.listSandboxes()).length; i++) await new Promise((r) => setTimeout(r, 100));
  client.close();
  const warnings = k.logs().split('\n').filter((l) => /"level":"(warn|error)"/.test(l) && !/informer|leader/.test(l));
  if (warnings.length) process.stderr.write(`server warnings:\n${warnings.slice(-10).join('\n')}\n`);
  await cleanup(k);

  const s = summary(singles);
  const b = summary(burst);
  const lines = [
    `bench/pod-start (${os.cpus().length} cores; image cached; create → Running seen on a watch)`,
    `  one pod at a time (n=${s.n}):   p50 ${f1(s.p50)} ms   p99 ${f1(s.p99)} ms   | floor bare runc run -d: p50 ${f1(bareSingle.p50)} ms p99 ${f1(bareSingle.p99)} ms   ratio p50 ${f1(s.p50 / bareSingle.p50)}×`,
    `  burst of ${BURST}:                p50 ${f1(b.p50)} ms   p99 ${f1(b.p99)} ms   wall ${f1(burstWall)} ms | floor ${BURST} bare runc run -d at once: p50 ${f1(bareBurst.p50)} ms p99 ${f1(bareBurst.p99)} ms   ratio p99 ${f1(b.p99 / bareBurst.p99)}×`,
    `  CPU per pod in the burst (whole machine): ${f1(burstCpu.all / BURST)} ms: server process ${f1(burstCpu.server / BURST)} ms, host agent ${f1(burstCpu.agent / BURST)} ms + the programs it waited for (runc start, ip, mount) ${f1(burstCpu.agentChildren / BURST)} ms, the rest (conmon, runc create, kernel threads, this benchmark) ${f1((burstCpu.all - burstCpu.server - burstCpu.agent - burstCpu.agentChildren) / BURST)} ms | floor: ${f1(bareBurstCpu / BURST)} ms per bare runc run -d`,
    `  memory per sandbox: conmon ${f1(conmonKiB / 1024)} MiB RSS; kubicle's processes (server and agent) grew ${f1((after - before) / 1024 / BURST)} MiB per sandbox (${f1(before / 1024)} → ${f1(after / 1024)} MiB)`,
    '  budget: burst-of-50 p99 ≤ 1,000 ms and ≤ 3× bare runc',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

runBench(main);
