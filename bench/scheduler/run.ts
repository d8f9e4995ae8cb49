import https from 'node:https';
import os from 'node:os';
import { cleanup, type Kubicle, startKubicle } from '../../test/support/kubicle.js';
import { f1, load, summary } from '../api/stats.js';
import { runBench } from '../main.js';

/**
 * bench/scheduler: 1,000 simulated nodes, 10,000 pods. Pods bound per second and scheduling
 * latency (create acknowledged -> bound, seen on a watch) beside the floor of the same run: the
 * API cost of binding, measured by binding pods directly through pods/binding. Then a
 * 1,000-replica Deployment from apply to all Ready, beside creating as many pods directly.
 * BENCH_SCALE shrinks every size (e.g. 0.1).
 */
const scale = Number(process.env.BENCH_SCALE ?? 1);
const NODES = Math.round(1000 * scale);
const PODS = Math.round(10_000 * scale);
const FLOOR_PODS = Math.round(2000 * scale);
const REPLICAS = Math.round(1000 * scale);

// biome-ignore lint/suspicious/noExplicitAny: API objects are untyped JSON
type Json = any;

async function client(k: Kubicle) {
  const { ca, cert, key } = await k.creds();
  const agent = new https.Agent({ ca, cert, key, keepAlive: true, maxSockets: 64 });
  const call = (method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = https.request(
        { host: '127.0.0.1', port: k.port, method, path, agent, headers: { Accept: 'application/json', ...(data ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(data)) } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} });
          });
        },
      );
      req.on('error', reject);
      if (data) req.write(data);
      req.end();
    });
  const must = async (p: Promise<{ status: number; json: Json }>, want: number) => {
    const r = await p;
    if (r.status !== want) throw new Error(`HTTP ${r.status}: ${JSON.stringify(r.json).slice(0, 300)}`);
    return r.json;
  };
  /** Follows pods of a namespace; calls back with each pod as it is now, and when it was seen. */
  const watchPods = (ns: string, onPod: (pod: Json, at: number) => void) => {
    const req = https.request({ host: '127.0.0.1', port: k.port, path: `/api/v1/namespaces/${ns}/pods?watch=true&resourceVersion=0`, agent: new https.Agent({ ca, cert, key }) }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        const now = performance.now();
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          const ev = JSON.parse(line);
          if (ev.object?.metadata?.name) onPod(ev.object, now);
        }
      });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    req.end();
    return () => req.destroy();
  };
  return { call, must, watchPods, close: () => agent.destroy() };
}

const pod = (name: string, ns: string, schedulerName?: string) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels: { bench: 'yes' } },
  spec: { ...(schedulerName ? { schedulerName } : {}), containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
});

async function main(): Promise<void> {
  const k = await startKubicle({ args: ['--simulate-nodes', String(NODES)] });
  const c = await client(k);
  try {
    for (const ns of ['floor', 'sched', 'deploy', 'direct']) await c.must(c.call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }), 201);
    const deadline = Date.now() + 120_000;
    while ((await c.must(c.call('GET', '/api/v1/nodes?limit=1&labelSelector=kubicle.io%2Fsimulated%3Dtrue'), 200)).items.length === 0 || (await c.must(c.call('GET', '/api/v1/nodes'), 200)).items.length < NODES) {
      if (Date.now() > deadline) throw new Error('simulated nodes did not register');
      await new Promise((r) => setTimeout(r, 500));
    }

    // Floor: the API cost of binding, without a scheduler deciding anything.
    await load(FLOOR_PODS, 32, (i) => c.must(c.call('POST', '/api/v1/namespaces/floor/pods', pod(`f-${i}`, 'floor', 'nobody')), 201).then(() => {}));
    const floor = await load(FLOOR_PODS, 32, (i) =>
      c.must(c.call('POST', `/api/v1/namespaces/floor/pods/f-${i}/binding`, { apiVersion: 'v1', kind: 'Binding', metadata: { name: `f-${i}` }, target: { kind: 'Node', name: `sim-node-${i % NODES}` } }), 201).then(() => {}),
    );

    // The scheduler: create pods, note when each is bound.
    const created = new Map<string, number>();
    const bound = new Map<string, number>();
    const running = new Set<string>();
    const stop = c.watchPods('sched', (pod, at) => {
      const name = pod.metadata.name;
      if (pod.spec?.nodeName && !bound.has(name)) bound.set(name, at);
      if (pod.status?.phase === 'Running') running.add(name);
    });
    await new Promise((r) => setTimeout(r, 500));
    const start = performance.now();
    await load(PODS, 32, async (i) => {
      await c.must(c.call('POST', '/api/v1/namespaces/sched/pods', pod(`s-${i}`, 'sched')), 201);
      created.set(`s-${i}`, performance.now());
    });
    const createdAll = performance.now();
    while (bound.size < PODS && performance.now() - createdAll < 120_000) await new Promise((r) => setTimeout(r, 100));
    const boundTimes = [...bound.values()];
    const lastBound = Math.max(...boundTimes);
    const latencies = [...bound.entries()].filter(([n]) => created.has(n)).map(([n, t]) => Math.max(0, t - created.get(n)!));
    const lat = summary(latencies);

    // The simulated kubelets report the bound pods Running at their own pace; let them finish, so
    // the Deployment below is measured on its own rather than behind their backlog.
    const settling = performance.now();
    while (running.size < bound.size && performance.now() - settling < 120_000) await new Promise((r) => setTimeout(r, 100));
    stop();
    const settledMs = performance.now() - settling;

    // A 1,000-replica Deployment from apply to all Ready, beside creating as many pods directly.
    const direct = await load(REPLICAS, 32, (i) => c.must(c.call('POST', '/api/v1/namespaces/direct/pods', pod(`d-${i}`, 'direct', 'nobody')), 201).then(() => {}));
    const t0 = performance.now();
    await c.must(
      c.call('POST', '/apis/apps/v1/namespaces/deploy/deployments', {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'big' },
        spec: { replicas: REPLICAS, selector: { matchLabels: { app: 'big' } }, template: { metadata: { labels: { app: 'big' } }, spec: { containers: [{ name: 'c', image: 'busybox', resources: { requests: { cpu: '10m' } } }] } } },
      }),
      201,
    );
    let readyMs = Number.NaN;
    while (performance.now() - t0 < 300_000) {
      const d = await c.must(c.call('GET', '/apis/apps/v1/namespaces/deploy/deployments/big'), 200);
      if ((d.status?.readyReplicas ?? 0) >= REPLICAS) {
        readyMs = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const rows = [
      `bench/scheduler (scale ${scale}, ${NODES} simulated nodes, ${os.cpus().length} cores, node ${process.version})`,
      '',
      '| figure | value | floor in the same run |',
      '|---|---|---|',
      `| pods bound per second (${bound.size}/${PODS} pods) | ${f1((bound.size / (lastBound - start)) * 1000)}/s over ${f1((lastBound - start) / 1000)} s | raw pods/binding calls, 32 clients: ${f1((FLOOR_PODS / floor.wallMs) * 1000)}/s |`,
      `| scheduling latency (create acknowledged → bound) | p50 ${f1(lat.p50)} ms, p99 ${f1(lat.p99)} ms | one binding call: p50 ${f1(summary(floor.latencies).p50)} ms |`,
      `| creating the ${PODS} pods (32 clients) | ${f1((PODS / (createdAll - start)) * 1000)}/s | |`,
      `| the node simulator reports the bound pods Running (${running.size}/${bound.size}) | ${f1(settledMs / 1000)} s after the last binding | |`,
      `| ${REPLICAS}-replica Deployment, apply → all Ready | ${f1(readyMs / 1000)} s | creating ${REPLICAS} pods directly: ${f1(direct.wallMs / 1000)} s |`,
    ];
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    c.close();
    await cleanup(k);
  }
}

runBench(main);
