import { KubeClient, type Obj } from '../../src/client/kube-client.js';
import { loadKubeconfig } from '../../src/client/kubeconfig.js';
import { type JoinedAgent, joinAgent } from '../../test/support/agents.js';
import { enableAuth, startEtcd } from '../../test/support/etcd.js';
import { cleanup, startKubicle } from '../../test/support/kubicle.js';
import { f1, summary } from '../api/stats.js';
import { tenantClient } from '../tenancy/clients.js';

/**
 * bench/replicas (issue 8, ADR 0024): control planes of two replicas on two hosts, on a shared etcd.
 * - create → API ready (first GET /version through the endpoint) and → both replicas running
 *   (status.readyReplicas 2), beside a one-replica cluster on the same etcd, the floor.
 * - failover: replica 0's process killed, then a new connection's GET /version, beside the same
 *   request while both run (the floor).
 * - controller takeover: the lease holder's host frozen and its replica killed, to the other
 *   replica holding kube-controller-manager's lease (bounded by the 15 s lease).
 * Hosts: the provider's own (cordoned, so both replicas go to the joined agents) and two joined agents.
 */
const CREATES = Number(process.env.BENCH_CREATES ?? 5);
const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? 10);
const TAKEOVERS = Number(process.env.BENCH_TAKEOVERS ?? 3);
const ms = (t0: number) => performance.now() - t0;
const progress = (what: string) => process.stderr.write(`bench/replicas: ${what}\n`);
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

async function until<T>(what: string, check: () => Promise<T | undefined>, deadlineMs = 120_000, everyMs = 5): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await check().catch((err) => {
      if (process.env.BENCH_DEBUG) progress(`${what}: ${(err as Error).message}`);
      return undefined;
    });
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`bench/replicas: ${what} not within ${deadlineMs / 1000} s`);
    await sleep(everyMs);
  }
}

async function main() {
  const etcd = await startEtcd();
  const root = await enableAuth(etcd);
  const p = await startKubicle({
    command: 'server',
    args: ['--cluster-etcd', `${etcd.url}/kubicle/clusters?user=root&password=${root}`, '--cluster-endpoint-pool', '127.251.12.0/24', '--bridge', 'kubbenchr', '--pod-cidr', '10.246.35.0/24', '--cluster-pod-pool', '10.237.0.0/16', '--cluster-sleep-after', '0', '--host-heartbeat', '1'],
  });
  const agents: Record<string, JoinedAgent> = {};
  for (const [name, n] of [
    ['second', 36],
    ['third', 37],
  ] as const) {
    agents[name] = joinAgent(p, { name, zone: 'zone-b', bridge: `kubbenchr${n}`, podCidr: `10.246.${n}.0/24` });
  }
  const op = new KubeClient(await loadKubeconfig(p.kubeconfig));
  const hostsPath = '/apis/kubicle.io/v1alpha1/hosts';
  const clustersPath = '/apis/kubicle.io/v1alpha1/namespaces/default/clusters';
  const ready = async (host: string) => ((await op.get(`${hostsPath}/${host}`)).status?.conditions ?? []).some((c: Obj) => c.type === 'Ready' && c.status === 'True');
  try {
    await until('three Ready hosts', async () => ((await op.get(hostsPath)).items as Obj[]).filter((h) => h.status?.conditions?.some((c: Obj) => c.type === 'Ready' && c.status === 'True')).length === 3 || undefined);
    const home = ((await op.get(hostsPath)).items as Obj[]).map((h) => h.metadata.name as string).find((n) => !(n in agents)) as string;
    await op.patch(`${hostsPath}/${home}`, { spec: { unschedulable: true } });
    const cluster = (name: string) => op.get(`${clustersPath}/${name}`);

    progress('creates');
    const created: Record<1 | 2, { api: number[]; all: number[] }> = { 1: { api: [], all: [] }, 2: { api: [], all: [] } };
    for (let i = 0; i < CREATES; i++) {
      for (const replicas of [1, 2] as const) {
        const name = `r${replicas}-${i}`;
        const t0 = performance.now();
        await op.create(clustersPath, { apiVersion: 'kubicle.io/v1alpha1', kind: 'Cluster', metadata: { name }, spec: { store: 'etcd', controlPlane: { replicas } } });
        const c = await tenantClient(op, name);
        await until(`${name} serving`, () => c.get('/version'));
        created[replicas].api.push(ms(t0));
        await until(`${name} all replicas`, async () => (await cluster(name)).status?.readyReplicas === replicas || undefined, 120_000, 20);
        created[replicas].all.push(ms(t0));
        c.close();
        // The last two-replica cluster stays for the failover runs.
        if (!(replicas === 2 && i === CREATES - 1)) await op.delete(`${clustersPath}/${name}`);
      }
    }
    const ha = `r2-${CREATES - 1}`;
    const c = await tenantClient(op, ha);
    const fresh = async () => {
      c.close(); // a new connection each time, as a new kubectl makes
      const t0 = performance.now();
      await until('an answer', () => c.get('/version'), 60_000, 1);
      return ms(t0);
    };
    const replicaPid = async (i: number) => {
      const hc = await cluster(ha);
      const sb = await agents[hc.status.replicaHosts[i]].client.getSandbox(i ? `cp-${hc.metadata.uid}-${i}` : `cp-${hc.metadata.uid}`);
      return sb.containers.find((x) => x.state === 'running')?.pid;
    };

    progress('failovers');
    const healthy: number[] = [];
    const failover: number[] = [];
    for (let i = 0; i < FAILOVERS; i++) {
      healthy.push(await fresh());
      const pid = await until('replica 0 running', () => replicaPid(0));
      process.kill(pid, 'SIGKILL');
      failover.push(await fresh());
      // Back: running with another process, and counted again.
      await until('replica 0 back', async () => { const now = await replicaPid(0); return (now !== undefined && now !== pid && (await cluster(ha)).status?.readyReplicas === 2) || undefined; }, 120_000, 50);
    }

    progress('takeovers');
    const takeover: number[] = [];
    for (let i = 0; i < TAKEOVERS; i++) {
      const holder = async () => (await c.get('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager')).spec?.holderIdentity as string;
      const before = await holder();
      const leader = before.startsWith(`${ha}-1_`) ? 1 : 0;
      const hc = await cluster(ha);
      const host = hc.status.replicaHosts[leader] as string;
      const pid = await replicaPid(leader);
      agents[host].process.kill('SIGSTOP');
      try {
        await until(`${host} NotReady`, async () => !(await ready(host)) || undefined, 60_000, 100);
        process.kill(pid as number, 'SIGKILL');
        const t0 = performance.now();
        await until('another leader', async () => ((await holder()) !== before ? true : undefined), 60_000, 100);
        takeover.push(ms(t0));
      } finally {
        agents[host].process.kill('SIGCONT');
      }
      await until('both replicas back', async () => ((await ready(host)) && (await cluster(ha)).status?.readyReplicas === 2) || undefined, 120_000, 100);
    }
    c.close();

    const line = (what: string, xs: number[], floor?: { what: string; xs: number[] }) => {
      const s = summary(xs);
      const f = floor && summary(floor.xs);
      console.log(`${what.padEnd(44)} p50 ${f1(s.p50).padStart(8)} ms  p99 ${f1(s.p99).padStart(8)} ms  (n=${s.n})${f ? `   floor ${floor.what}: p50 ${f1(f.p50)} ms  ratio ${f1(s.p50 / f.p50)}` : ''}`);
    };
    console.log(`bench/replicas: ${CREATES} creates each, ${FAILOVERS} failovers, ${TAKEOVERS} takeovers; hosts: ${Object.keys(agents).join(', ')} (zone-b), ${home} cordoned`);
    line('create 1 replica -> API ready', created[1].api);
    line('create 2 replicas -> API ready', created[2].api, { what: '1 replica', xs: created[1].api });
    line('create 2 replicas -> both running', created[2].all, { what: '1 replica', xs: created[1].all });
    line('GET /version, new connection, both running', healthy);
    line('GET /version right after replica 0 killed', failover, { what: 'both running', xs: healthy });
    line('controller lease taken over after leader lost', takeover);
  } finally {
    if (process.env.BENCH_DEBUG) progress(p.logs().split('\n').filter((l) => /replica|cluster (started|woke)|control plane/.test(l)).slice(-40).join('\n'));
    for (const name of ((await op.get(clustersPath).catch(() => ({ items: [] }))).items as Obj[]).map((x) => x.metadata.name)) await op.delete(`${clustersPath}/${name}`).catch(() => {});
    await until('clusters deleted', async () => ((await op.get(clustersPath)).items.length === 0 ? true : undefined), 120_000, 200).catch(() => {});
    op.close();
    for (const a of Object.values(agents)) await a.stop();
    await cleanup(p);
    await etcd.stop();
  }
}

await main();
process.exit(0);
