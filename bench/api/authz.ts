import { readFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { issueClient } from '../../src/apiserver/pki.js';
import { cleanup, startKubicle } from '../../test/support/kubicle.js';
import { runBench } from '../main.js';
import { f1, load, summary } from './stats.js';

/**
 * bench/api authz: what RBAC costs per request. One `kubicle standalone` holds 1,000 Roles and
 * 1,000 RoleBindings (for 1,000 other users) besides a binding of `edit` to the group `devs`.
 * The same gets and creates are then sent as the admin, whose group system:masters passes
 * authorization and escalation checks at once (the floor: RBAC off), and as `alice` of `devs`,
 * whose every request is decided from the index. Both go through the same admission chain, which
 * a real client cannot switch off; the difference between the two is the cost of RBAC.
 * Then admission: pod creates in a namespace with a LimitRange, a ResourceQuota and PodSecurity
 * labels beside the same creates in a namespace with none, in the same run.
 * Sizes can be lowered with BENCH_SCALE (e.g. 0.1).
 */
const scale = Number(process.env.BENCH_SCALE ?? 1);
const N_RBAC = Math.round(1000 * scale);
const N_GET = Math.round(4000 * scale);
const N_CREATE = Math.round(1000 * scale);
const ROUNDS = 3;

function client(port: number, creds: { ca: string; cert: string; key: string }) {
  const agent = new https.Agent({ ...creds, keepAlive: true, maxSockets: 16 });
  return (method: string, p: string, body?: string, contentType = 'application/json') =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, method, path: p, agent, headers: { Accept: 'application/json', ...(body ? { 'Content-Type': contentType } : {}) } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
}

async function main(): Promise<void> {
  const k = await startKubicle();
  try {
    const admin = client(k.port, await k.creds());
    const ca = { cert: await readFile(path.join(k.dataDir, 'pki', 'ca.crt'), 'utf8'), key: await readFile(path.join(k.dataDir, 'pki', 'ca.key'), 'utf8') };
    const issued = issueClient(ca, 'alice', ['devs']);
    const alice = client(k.port, { ca: ca.cert, cert: issued.cert, key: issued.key });
    const must = async (p: Promise<{ status: number; text: string }>, want: number) => {
      const r = await p;
      if (r.status !== want) throw new Error(`HTTP ${r.status}: ${r.text.slice(0, 300)}`);
    };
    await must(admin('POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bench' } })), 201);
    const rbac = '/apis/rbac.authorization.k8s.io/v1/namespaces/bench';
    await load(N_RBAC, 16, async (i) => {
      await must(admin('POST', `${rbac}/roles`, JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: `r${i}` }, rules: [{ apiGroups: [''], resources: [`things${i}`], verbs: ['get'] }] })), 201);
      await must(
        admin(
          'POST',
          `${rbac}/rolebindings`,
          JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: `b${i}` }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `r${i}` }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `user${i}` }] }),
        ),
        201,
      );
    });
    await must(
      admin('POST', `${rbac}/rolebindings`, JSON.stringify({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'devs-edit' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'edit' }, subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'devs' }] })),
      201,
    );
    await must(admin('POST', '/api/v1/namespaces/bench/configmaps', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'target' }, data: { a: 'b' } })), 201);
    // The index is rebuilt on the first decision after the writes above: warm both paths.
    for (let i = 0; i < 3 && (await alice('GET', '/api/v1/namespaces/bench/configmaps/target')).status !== 200; i++) await new Promise((r) => setTimeout(r, 200));
    await must(alice('GET', '/api/v1/namespaces/bench/configmaps/target'), 200);
    await must(alice('GET', '/api/v1/namespaces/bench/secrets'), 200);
    await must(alice('GET', '/api/v1/nodes'), 403);

    type Run = { latencies: number[]; wallMs: number };
    const medianOf = (runs: Run[]) => [...runs].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(runs.length / 2)];
    const rows: string[] = [];
    let round = 0;
    const figure = (x: { latencies: number[]; wallMs: number }, n: number) => {
      const s = summary(x.latencies);
      return { text: `${f1((n / x.wallMs) * 1000)}/s p50 ${f1(s.p50)} ms p99 ${f1(s.p99)} ms`, per: x.wallMs / n };
    };
    for (const [what, n, req] of [
      ['get a ConfigMap, 8 clients', N_GET, (c: typeof admin) => async () => must(c('GET', '/api/v1/namespaces/bench/configmaps/target'), 200)],
      [
        'create a ConfigMap, 8 clients',
        N_CREATE,
        (c: typeof admin) => async (i: number) => must(c('POST', '/api/v1/namespaces/bench/configmaps', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `c-${round}-${i}` } })), 201),
      ],
    ] as const) {
      // A warm-up round each, then rounds taken in turn, so neither side gets the warmer process.
      const offs: Run[] = [];
      const ons: Run[] = [];
      for (let r = -1; r < ROUNDS; r++) {
        round++;
        const off = await load(n, 8, req(admin));
        round++;
        const on = await load(n, 8, req(alice));
        if (r >= 0) {
          offs.push(off);
          ons.push(on);
        }
      }
      const off = medianOf(offs);
      const on = medianOf(ons);
      const a = figure(on, n);
      const b = figure(off, n);
      rows.push(`| ${what} | ${a.text} | ${b.text} | ${f1(a.per / b.per)}× time per request |`);
    }
    // Admission: the same pod create in a namespace whose policies every create must pass
    // (LimitRange defaults and bounds, a ResourceQuota to charge, PodSecurity baseline enforced
    // and restricted warned) and in one with none (the floor: admission plugins with nothing to do).
    for (const ns of ['plain', 'guarded']) {
      await must(admin('POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })), 201);
    }
    const guarded = '/api/v1/namespaces/guarded';
    await must(admin('PATCH', '/api/v1/namespaces/guarded', JSON.stringify({ metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'baseline', 'pod-security.kubernetes.io/warn': 'restricted' } } }), 'application/merge-patch+json'), 200);
    await must(
      admin('POST', `${guarded}/limitranges`, JSON.stringify({ apiVersion: 'v1', kind: 'LimitRange', metadata: { name: 'limits' }, spec: { limits: [{ type: 'Container', default: { cpu: '100m', memory: '64Mi' }, defaultRequest: { cpu: '50m', memory: '32Mi' }, max: { cpu: '1', memory: '1Gi' } }] } })),
      201,
    );
    await must(admin('POST', `${guarded}/resourcequotas`, JSON.stringify({ apiVersion: 'v1', kind: 'ResourceQuota', metadata: { name: 'quota' }, spec: { hard: { pods: '100000', 'requests.cpu': '10000', 'limits.memory': '10000Gi' } } })), 201);
    for (const ns of ['plain', 'guarded']) {
      for (let i = 0; i < 50 && (await admin('GET', `/api/v1/namespaces/${ns}/serviceaccounts/default`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    }
    const podCreate = (ns: string) => async (i: number) =>
      must(admin('POST', `/api/v1/namespaces/${ns}/pods`, JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: `p-${round}-${i}` }, spec: { containers: [{ name: 'c', image: 'busybox' }] } })), 201);
    const admissionRows: string[] = [];
    {
      const offs: Run[] = [];
      const ons: Run[] = [];
      for (let r = -1; r < ROUNDS; r++) {
        round++;
        const off = await load(N_CREATE, 8, podCreate('plain'));
        round++;
        const on = await load(N_CREATE, 8, podCreate('guarded'));
        if (r >= 0) {
          offs.push(off);
          ons.push(on);
        }
      }
      const a = figure(medianOf(ons), N_CREATE);
      const b = figure(medianOf(offs), N_CREATE);
      admissionRows.push(`| create a Pod, 8 clients | ${a.text} | ${b.text} | ${f1(a.per / b.per)}× time per request |`);
    }
    const lines = [
      `bench/api authz (scale ${scale}, ${os.cpus().length} cores, node ${process.version}; ${N_RBAC} Roles and ${N_RBAC} RoleBindings present; median of ${ROUNDS} rounds)`,
      '',
      '| request | RBAC user (alice, group devs → edit) | system:masters (RBAC skipped: floor) | RBAC / floor |',
      '|---|---|---|---|',
      ...rows,
      '',
      '| request | namespace with LimitRange, ResourceQuota, PodSecurity | namespace without (floor) | admission / floor |',
      '|---|---|---|---|',
      ...admissionRows,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await cleanup(k);
  }
}

runBench(main);
