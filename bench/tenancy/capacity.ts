import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { KubeClient, type Obj } from '../../src/client/kube-client.js';
import { loadKubeconfig } from '../../src/client/kubeconfig.js';
import { cleanup, startKubicle } from '../../test/support/kubicle.js';
import { f1, summary } from '../api/stats.js';
import { tenantClient } from './clients.js';
import { agentPid as agentPidOf, controlPlanePids, cpuByGroup, pidsMatching, providerPid as providerPidOf, pssMiB, rssMiB } from './procs.js';

/**
 * bench/tenancy capacity (issue 8, DESIGN §7: ≥ 100 active and ≥ 1,000 asleep clusters on one
 * machine): how many tenant clusters this machine really holds, not an extrapolation.
 * - active: BENCH_ACTIVE clusters created one after another, never sleeping; after they idle, each
 *   must answer GET /version through its own endpoint; the machine's CPU and memory are read.
 * - asleep: those put to sleep, and more created (a few at a time, each sleeping 1 s after its
 *   first answer) up to BENCH_ASLEEP; then every one must be Sleeping, with its control plane's
 *   process gone, and a sample is woken and timed.
 * Floors in the same run: the machine's CPU and memory before the first cluster.
 */
const ACTIVE = Number(process.env.BENCH_ACTIVE ?? 100);
const ASLEEP = Math.max(ACTIVE, Number(process.env.BENCH_ASLEEP ?? 1000));
const SAMPLE = Math.min(ASLEEP, 10);
const CONCURRENCY = 3;
const ms = (t0: number) => performance.now() - t0;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
const progress = (what: string) => process.stderr.write(`bench/tenancy capacity: ${what}\n`);

function meminfoMiB(field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]) / 1024;
}

/** The share of the machine's CPU time spent busy over `windowMs`. */
async function cpuBusy(windowMs: number): Promise<number> {
  const read = () => readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number);
  const a = read();
  await sleep(windowMs);
  const b = read();
  const d = b.map((x, i) => x - a[i]);
  const total = d.reduce((s, x) => s + x, 0);
  const idle = d[3] + d[4]; // idle + iowait
  return (total - idle) / total;
}

async function main() {
  const cpuBefore = await cpuBusy(5000);
  const memBefore = meminfoMiB('MemAvailable');
  const p = await startKubicle({
    command: 'server',
    args: ['--cluster-endpoint-pool', '127.248.0.0/14', '--bridge', 'kubbench9', '--pod-cidr', '10.246.18.0/24', '--cluster-pod-pool', '10.160.0.0/12', '--cluster-sleep-after', '0', '--log-level', 'warn'],
  });
  const op = new KubeClient(await loadKubeconfig(p.kubeconfig));
  const clustersPath = '/apis/kubicle.io/v1alpha1/namespaces/default/clusters';
  const clientOf = (name: string) => tenantClient(op, name, 20);

  const ready = async (c: KubeClient, deadlineMs = 120_000) => {
    const until = Date.now() + deadlineMs;
    for (;;) {
      try {
        await c.get('/version');
        return;
      } catch (err) {
        if (Date.now() > until) throw err;
        await sleep(20);
      }
    }
  };
  const create = async (name: string, sleepAfterSeconds?: number) => {
    await op.create(clustersPath, { apiVersion: 'kubicle.io/v1alpha1', kind: 'Cluster', metadata: { name }, spec: sleepAfterSeconds ? { sleepAfterSeconds } : {} });
    const c = await clientOf(name);
    await ready(c);
    c.close();
  };
  const clusters = async () => (await op.get(clustersPath)).items as Obj[];
  const providerPid = providerPidOf(p.dataDir);
  const agentPid = agentPidOf(p.dataDir);
  // Where an idle machine's CPU goes, measured over the same window as the machine's total.
  const busyWithSplit = async (windowMs: number) => {
    const groups = { provider: [providerPid], agent: [agentPid], 'control planes': controlPlanePids(), conmon: pidsMatching('/conmon') };
    const [busy, split] = await Promise.all([cpuBusy(windowMs), cpuByGroup(groups, windowMs)]);
    const text = Object.entries(split)
      .map(([g, cores]) => `${g} ${cores.toFixed(3)}`)
      .join(', ');
    return { busy, text };
  };

  const line = (label: string, value: string, floorText: string) => console.log(`${label.padEnd(46)} ${value.padEnd(30)} ${floorText}`);
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  console.log(`bench/tenancy capacity: ${ACTIVE} active, ${ASLEEP} asleep; ${os.cpus().length} cores, ${f1(os.totalmem() / 1048576)} MiB`);
  line('floor: machine CPU busy, no provider', pct(cpuBefore), `memory available ${f1(memBefore)} MiB`);
  // Active: created one after another, never sleeping.
  const t0 = performance.now();
  for (let i = 0; i < ACTIVE; i++) {
    await create(`c${i}`);
    if ((i + 1) % 10 === 0) progress(`${i + 1}/${ACTIVE} active created`);
  }
  const activeCreateS = ms(t0) / 1000;
  progress('all active created; idle 20 s');
  await sleep(20_000);
  let answering = 0;
  const awakeLatency: number[] = [];
  for (let i = 0; i < ACTIVE; i++) {
    const c = await clientOf(`c${i}`);
    const t = performance.now();
    try {
      await c.get('/version');
      answering++;
      awakeLatency.push(ms(t));
    } catch {
      // counted as not answering
    }
    c.close();
  }
  const { busy: cpuActive, text: splitActive } = await busyWithSplit(10_000);
  const memActive = meminfoMiB('MemAvailable');
  const cps = controlPlanePids();
  const pssActive = cps.reduce((s, pid) => s + pssMiB(pid), 0);
  const providerActive = rssMiB(providerPid);

  const aw = summary(awakeLatency);
  line(`active clusters answering /version`, `${answering}/${ACTIVE}`, `p50 ${f1(aw.p50)} ms, p99 ${f1(aw.p99)} ms (new TLS connection each)`);
  line(`created one by one (${ACTIVE})`, `${f1(activeCreateS)} s`, `${f1((activeCreateS * 1000) / ACTIVE)} ms per cluster`);
  line(`machine with ${ACTIVE} idle active clusters`, `CPU busy ${pct(cpuActive)}`, `memory available ${f1(memActive)} MiB (used ${f1(memBefore - memActive)} MiB)`);
  line('  CPU by process, in cores', splitActive, '');
  line('control planes (processes / summed PSS)', `${cps.length} / ${f1(pssActive)} MiB`, `${f1(pssActive / Math.max(cps.length, 1))} MiB each; provider RSS ${f1(providerActive)} MiB`);
  // Asleep: the active ones first, then more, a few at a time, each sleeping soon after it answers.
  for (const c of await clusters()) await op.patch(`${clustersPath}/${c.metadata.name}`, { spec: { sleepAfterSeconds: 1 } });
  const t1 = performance.now();
  let next = ACTIVE;
  const workers = Array.from({ length: CONCURRENCY }, async () => {
    for (;;) {
      const i = next++;
      if (i >= ASLEEP) return;
      await create(`c${i}`, 1);
      if ((i + 1) % 50 === 0) progress(`${i + 1}/${ASLEEP} created`);
    }
  });
  await Promise.all(workers);
  const asleepCreateS = ms(t1) / 1000;
  progress('waiting for every cluster to sleep');
  let sleeping = 0;
  const until = Date.now() + 300_000;
  while (Date.now() < until) {
    sleeping = (await clusters()).filter((c) => c.status?.phase === 'Sleeping').length;
    if (sleeping === ASLEEP) break;
    await sleep(2000);
  }
  await sleep(5000);
  const left = controlPlanePids().length;
  const memAsleep = meminfoMiB('MemAvailable');
  const { busy: cpuAsleep, text: splitAsleep } = await busyWithSplit(10_000);
  const providerAsleep = rssMiB(providerPid);
  const providerFds = readdirSync(`/proc/${providerPid}/fd`).length;

  line(`clusters Sleeping`, `${sleeping}/${ASLEEP}`, `control-plane processes left: ${left}; ${ASLEEP - ACTIVE} created ${CONCURRENCY} at a time in ${f1(asleepCreateS)} s`);
  line(`machine with ${ASLEEP} asleep clusters`, `CPU busy ${pct(cpuAsleep)}`, `memory available ${f1(memAsleep)} MiB (used ${f1(memBefore - memAsleep)} MiB)`);
  line('  CPU by process, in cores', splitAsleep, '');
  line('provider asleep (RSS / open fds)', `${f1(providerAsleep)} MiB / ${providerFds}`, '');

  // A sample woken, spread over the range, each after the last has settled.
  progress('waking a sample');
  const wake: number[] = [];
  const failed: string[] = [];
  for (let k = 0; k < SAMPLE; k++) {
    const name = `c${Math.floor((k * ASLEEP) / SAMPLE)}`;
    await op.patch(`${clustersPath}/${name}`, { spec: { sleepAfterSeconds: 0 } });
    const c = await clientOf(name);
    if (k > 0) await sleep(2000);
    const t = performance.now();
    try {
      await c.get('/version');
      wake.push(ms(t));
    } catch (err) {
      // A wake must be served without an error: counted, and the run goes on to clean up.
      failed.push(`${name}: ${(err as Error).message}`);
    }
    c.close();
  }

  const ws = summary(wake);
  line(`wake from sleep (${SAMPLE} across the range)`, `p50 ${f1(ws.p50)} ms, p99 ${f1(ws.p99)} ms`, `each: ${wake.map((w) => w.toFixed(0)).join(' ')}`);
  line('wakes answered with an error', `${failed.length}/${SAMPLE}`, failed.join('; '));

  progress('deleting');
  await op.request('DELETE', clustersPath);
  const gone = Date.now() + 900_000;
  while (Date.now() < gone && (await clusters()).length) await sleep(2000);
  op.close();
  await cleanup(p);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
