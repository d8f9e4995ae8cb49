import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient, type Obj } from '../../src/client/kube-client.js';
import { loadKubeconfig } from '../../src/client/kubeconfig.js';
import { SandboxClient } from '../../src/sandbox/api/client.js';
import { cleanup, startKubicle } from '../../test/support/kubicle.js';
import { f1, summary } from '../api/stats.js';
import { tenantClient } from './clients.js';
import { controlPlanePids, cpuMs, providerPid as providerPidOf, pssMiB, rssMiB } from './procs.js';

/**
 * bench/tenancy (issue 8): tenant control planes on the provider, each in its own runc sandbox.
 * - create → API ready: POST a Cluster, then the first successful GET /version through its
 *   endpoint with its own credentials; one cluster at a time.
 * - idle memory per control plane: the process's RSS and its sandbox cgroup's usage, 10 s idle.
 * - wake: a sleeping cluster's first request (new TLS connection) to its answer.
 * - how many active and asleep clusters this machine holds: measured for the count created here,
 *   with the per-cluster cost that bounds the rest.
 * - the cost of metering: one sample of every sandbox's usage, beside the agent listing them.
 * Floors in the same run: `node -e 0`, and a bare `kubicle controlplane` (no sandbox, no provider)
 * to serving on a fresh and on an existing data directory, and its idle RSS.
 */
const CLUSTERS = Number(process.env.BENCH_CLUSTERS ?? 20);
const WAKES = Math.min(CLUSTERS, Number(process.env.BENCH_WAKES ?? 10));
const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/kubicle.js');
const ms = (t0: number) => performance.now() - t0;
const median = (xs: number[]) => summary(xs).p50;
const progress = (what: string) => process.stderr.write(`bench/tenancy: ${what}\n`);

async function bareControlPlane(dir: string): Promise<{ ms: number; proc: ChildProcess }> {
  rmSync(path.join(dir, 'kubeconfig'), { force: true });
  const t0 = performance.now();
  const proc = spawn(process.execPath, ['--max-semi-space-size=1', bin, 'controlplane', '--data-dir', dir, '--listen-socket', path.join(dir, 'api.sock'), '--host', '127.0.0.1', '--port', '443', '--log-level', 'warn'], { stdio: 'ignore' });
  while (!existsSync(path.join(dir, 'kubeconfig'))) await new Promise((r) => setTimeout(r, 5));
  return { ms: ms(t0), proc };
}

async function stop(proc: ChildProcess): Promise<void> {
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
}

async function floors() {
  const node: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    execFileSync(process.execPath, ['-e', '0']);
    node.push(ms(t0));
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kubicle-bench-cp-'));
  const fresh: number[] = [];
  const again: number[] = [];
  let idle = 0;
  let idleCpu = 0;
  for (let i = 0; i < 3; i++) {
    const d = path.join(dir, String(i));
    const a = await bareControlPlane(d);
    fresh.push(a.ms);
    await stop(a.proc);
    const b = await bareControlPlane(d);
    again.push(b.ms);
    if (i === 0) {
      // Settled first, as the provider's clusters are: a start's own work is not idleness.
      await new Promise((r) => setTimeout(r, 5_000));
      const cpu0 = cpuMs(b.proc.pid as number);
      await new Promise((r) => setTimeout(r, 10_000));
      idleCpu = cpuMs(b.proc.pid as number) - cpu0;
      idle = rssMiB(b.proc.pid as number);
    }
    await stop(b.proc);
  }
  rmSync(dir, { recursive: true, force: true });
  return { node: median(node), fresh: median(fresh), again: median(again), idle, idleCpu };
}

async function main() {
  const floor = await floors();
  const p = await startKubicle({ command: 'server', args: ['--cluster-endpoint-pool', '127.252.0.0/16', '--bridge', 'kubbench8', '--pod-cidr', '10.246.15.0/24', '--cluster-pod-pool', '10.232.0.0/16', '--cluster-sleep-after', '0', '--log-level', 'info'] });
  const op = new KubeClient(await loadKubeconfig(p.kubeconfig));
  const clustersPath = '/apis/kubicle.io/v1alpha1/namespaces/default/clusters';
  const tenant = new Map<string, KubeClient>();
  const clientOf = (name: string) => tenantClient(op, name);

  const providerPid = providerPidOf(p.dataDir);
  const providerBefore = rssMiB(providerPid);

  const create: number[] = [];
  for (let i = 0; i < CLUSTERS; i++) {
    const name = `c${i}`;
    const t0 = performance.now();
    await op.create(clustersPath, { apiVersion: 'kubicle.io/v1alpha1', kind: 'Cluster', metadata: { name }, spec: {} });
    const c = await clientOf(name);
    for (;;) {
      try {
        await c.get('/version');
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    create.push(ms(t0));
    tenant.set(name, c);
  }
  progress('created; idle 15 s');
  await new Promise((r) => setTimeout(r, 5_000));
  // CPU over 10 idle seconds: each control plane's own (its components' timers, the provider's
  // health probes answered), and the provider's (probes, replica checks, status).
  const idlePids = controlPlanePids();
  const cpu0 = new Map([...idlePids, providerPid].map((pid) => [pid, cpuMs(pid)]));
  await new Promise((r) => setTimeout(r, 10_000));
  const idleCpu = idlePids.map((pid) => cpuMs(pid) - (cpu0.get(pid) ?? 0));
  const providerIdleCpu = cpuMs(providerPid) - (cpu0.get(providerPid) ?? 0);
  const cps = controlPlanePids();
  const rss = cps.map(rssMiB);
  const pss = cps.map(pssMiB);
  const agent = new SandboxClient({ socketPath: path.join(p.dataDir, 'agent.sock') });
  const cgroup: number[] = [];
  for (const c of (await op.get(clustersPath)).items as Obj[]) cgroup.push((await agent.usage(`cp-${c.metadata.uid}`)).memoryBytes / 1048576);
  progress('memory measured; metering');
  // The cost of metering: one sample (every sandbox's usage in one call), beside listing them alone.
  const sample: number[] = [];
  const list: number[] = [];
  for (let i = 0; i < 10; i++) {
    let t0 = performance.now();
    await agent.listSandboxes();
    list.push(ms(t0));
    t0 = performance.now();
    await agent.usageAll();
    sample.push(ms(t0));
  }
  const sandboxes = (await agent.listSandboxes()).length;
  const providerActive = rssMiB(providerPid);
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const availMiB = Number(/MemAvailable:\s+(\d+)/.exec(meminfo)?.[1]) / 1024;

  progress('awake requests');
  // Awake request latency, then sleep WAKES clusters and time their first request.
  const awake: number[] = [];
  for (let i = 0; i < WAKES; i++) {
    const c = tenant.get(`c${i}`) as KubeClient;
    c.close(); // a new connection each time, as a new kubectl makes
    const t0 = performance.now();
    await c.get('/version');
    awake.push(ms(t0));
  }
  for (const c of (await op.get(clustersPath)).items as Obj[]) await op.patch(`${clustersPath}/${c.metadata.name}`, { spec: { sleepAfterSeconds: 1 } });
  for (;;) {
    const items = (await op.get(clustersPath)).items as Obj[];
    if (items.every((c) => c.status?.phase === 'Sleeping')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  progress('all asleep; waking');
  const providerAsleep = rssMiB(providerPid);
  const leftAsleep = controlPlanePids().length;
  // Keep woken clusters awake while timing the rest.
  for (let i = 0; i < WAKES; i++) await op.patch(`${clustersPath}/c${i}`, { spec: { sleepAfterSeconds: 0 } });
  const wake: number[] = [];
  for (let i = 0; i < WAKES; i++) {
    const c = tenant.get(`c${i}`) as KubeClient;
    c.close();
    // The woken cluster before starts its components once it has answered (~0.4 s of CPU):
    // let it settle, so each wake is timed on a machine as quiet as the first's.
    if (i > 0) await new Promise((r) => setTimeout(r, 2000));
    const t0 = performance.now();
    await c.get('/version');
    wake.push(ms(t0));
  }

  const cs = summary(create);
  const ws = summary(wake);
  const line = (label: string, value: string, floorText: string) => console.log(`${label.padEnd(44)} ${value.padEnd(26)} ${floorText}`);
  console.log(`bench/tenancy: ${CLUSTERS} clusters, ${WAKES} wakes; ${os.cpus().length} cores`);
  line('floor: node -e 0', `${f1(floor.node)} ms`, '');
  line('floor: bare controlplane, fresh dir', `${f1(floor.fresh)} ms`, '(keys, store, bootstrap)');
  line('floor: bare controlplane, existing dir', `${f1(floor.again)} ms`, '');
  line('floor: bare controlplane idle RSS', `${f1(floor.idle)} MiB`, '');
  line('create -> API ready', `p50 ${f1(cs.p50)} ms, p99 ${f1(cs.p99)} ms`, `${f1(cs.p50 / floor.fresh)}x bare fresh; each: ${create.map((c) => c.toFixed(0)).join(' ')}`);
  line('request to an awake cluster (new TLS conn)', `p50 ${f1(median(awake))} ms`, '');
  line('wake from sleep (first request answered)', `p50 ${f1(ws.p50)} ms, p99 ${f1(ws.p99)} ms`, `${f1(ws.p50 / floor.again)}x bare restart; each: ${wake.map((w) => w.toFixed(0)).join(' ')}`);
  line('wake phases in the provider (p50)', wakePhases(p.logs()), '');
  line('idle control plane RSS', `p50 ${f1(median(rss))} MiB, max ${f1(Math.max(...rss))}`, `${f1(median(rss) / floor.idle)}x bare idle`);
  line('idle control plane CPU over 10 s', `p50 ${f1(median(idleCpu))} ms`, `bare idle ${f1(floor.idleCpu)} ms; provider with ${CLUSTERS} active: ${f1(providerIdleCpu)} ms`);
  line('idle control plane PSS (shared pages split)', `p50 ${f1(median(pss))} MiB`, '');
  line('idle control plane sandbox cgroup memory', `p50 ${f1(median(cgroup))} MiB`, '(includes page cache)');
  line(`metering sample (${sandboxes} sandboxes)`, `p50 ${f1(median(sample))} ms`, `floor: list alone p50 ${f1(median(list))} ms; ${((median(sample) / 10_000) * 100).toFixed(2)}% of a core at the 10 s interval`);
  line(`provider RSS: 0 / ${CLUSTERS} active / asleep`, `${f1(providerBefore)} / ${f1(providerActive)} / ${f1(providerAsleep)} MiB`, `control-plane processes left asleep: ${leftAsleep}`);
  line('active clusters held (measured)', `${CLUSTERS}`, `memory left: ${f1(availMiB)} MiB -> ~${Math.floor(availMiB / median(pss))} more at the idle PSS`);
  line('asleep clusters held (measured)', `${CLUSTERS}`, `cost asleep: a listening socket and a Cluster object each`);
  progress('deleting');
  for (const c of tenant.values()) c.close();
  await op.request('DELETE', clustersPath);
  for (;;) {
    if (!((await op.get(clustersPath)).items as Obj[]).length) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  op.close();
  await cleanup(p);
}

/** The provider's own breakdown of each wake (its "cluster woke" log lines): the median of each phase. */
function wakePhases(logs: string): string {
  const per = new Map<string, number[]>();
  for (const text of logs.split('\n')) {
    if (!text.includes('"cluster woke"')) continue;
    const rec = JSON.parse(text) as { ms: number; phases: Record<string, number> };
    for (const [k, v] of Object.entries({ ...rec.phases, total: rec.ms })) per.set(k, [...(per.get(k) ?? []), v]);
  }
  return [...per].map(([k, v]) => `${k} ${median(v)}`).join(', ');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
