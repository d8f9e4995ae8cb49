import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { KubeClient } from '../client/kube-client.js';
import { silentLogger } from '../observe/log.js';
import { SandboxClient } from '../sandbox/api/client.js';
import type { SandboxStatus } from '../sandbox/api/types.js';
import { parseLabelSelector } from '../sandbox/api/wire.js';
import { type ClusterScope, clusterLabel, cpuLabel, hostSandboxId, memoryLabel, SandboxGateway } from './sandbox-gateway.js';

/**
 * The gateway in front of a stand-in host agent (named as such: an HTTP server on a unix socket
 * that keeps sandboxes in a map; the real agent is driven by test/e2e/provider.test.ts). What a
 * hostile control plane sends must be refused with a clear error and reach nothing of another
 * cluster's.
 */
async function setup(quota: { cpuMillis?: number; memoryBytes?: number } = {}, capacity?: { cpuMillis: number; memoryBytes: number }) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-gw-'));
  const sandboxes = new Map<string, SandboxStatus>();
  const seen: string[] = [];
  const agent = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    let body = '';
    req.on('data', (d) => {
      body += d;
    });
    req.on('end', () => {
      const reply = (status: number, v: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      const m = /^\/v1\/sandboxes\/([^/?]+)/.exec(req.url ?? '');
      const url = new URL(req.url ?? '/', 'http://agent');
      if (url.pathname === '/v1/sandboxes' && req.method === 'GET') {
        // As the agent does: only sandboxes carrying every label of the selector.
        const want = parseLabelSelector(url.searchParams.get('labelSelector')) ?? {};
        return reply(200, [...sandboxes.values()].filter((s) => Object.entries(want).every(([k, v]) => s.labels?.[k] === v)));
      }
      if (req.url === '/v1/sandboxes' && req.method === 'POST') {
        const { spec } = JSON.parse(body);
        const s: SandboxStatus = { id: spec.id, state: 'ready', labels: spec.labels, createdAt: '', containers: [] };
        sandboxes.set(spec.id, s);
        return reply(201, { ...s, network: spec.podNetwork, resources: spec.resources, volumes: spec.volumes });
      }
      if (m && req.method === 'GET') return sandboxes.has(decodeURIComponent(m[1])) ? reply(200, sandboxes.get(decodeURIComponent(m[1]))) : reply(404, { code: 'NotFound', message: 'no such sandbox' });
      if (m && req.method === 'DELETE') {
        sandboxes.delete(decodeURIComponent(m[1]));
        return reply(200, {});
      }
      reply(404, { code: 'NotFound', message: 'no route' });
    });
  });
  const agentSock = path.join(dir, 'agent.sock');
  await new Promise<void>((r) => agent.listen(agentSock, r));
  const records: string[] = [];
  const client = { create: async (_p: string, o: { metadata: { name: string } }) => records.push(o.metadata.name), delete: async () => ({}) } as unknown as KubeClient;
  // The host's room as provider/hosts.ts reckons it: the limits its sandboxes' labels carry, against its capacity.
  const room = async () => {
    if (!capacity) return undefined;
    const allocated = { cpuMillis: 0, memoryBytes: 0 };
    for (const sb of sandboxes.values()) {
      allocated.cpuMillis += Number(sb.labels[cpuLabel]);
      allocated.memoryBytes += Number(sb.labels[memoryLabel]);
    }
    return { capacity, allocated };
  };
  const gw = new SandboxGateway({ socket: () => agentSock, names: () => ['h'], room }, client, silentLogger);
  const scope = (uid: string, tenant: string): ClusterScope => ({ uid, tenant, name: `c-${uid}`, network: `net-${uid}`, host: 'h', volumes: path.join(dir, `volumes-${uid}`), quota: () => quota });
  const a = scope('aaaaaaaa-1111-2222-3333-444444444444', 'acme');
  const b = scope('bbbbbbbb-1111-2222-3333-444444444444', 'globex');
  await gw.open(a, path.join(dir, 'a.sock'));
  await gw.open(b, path.join(dir, 'b.sock'));
  const close = async () => {
    await gw.closeAll();
    agent.close();
    await rm(dir, { recursive: true, force: true });
  };
  return { a, b, ca: new SandboxClient({ socketPath: path.join(dir, 'a.sock') }), cb: new SandboxClient({ socketPath: path.join(dir, 'b.sock') }), sandboxes, seen, records, close, dir };
}

test("each cluster sees and reaches only its own sandboxes, under ids of its own, on its own network", async () => {
  const t = await setup();
  try {
    const created = (await t.ca.createSandbox({ id: 'pod-1', hostname: 'p', labels: { 'kubicle.io/node': 'kubicle-virtual' } })) as SandboxStatus & { network?: string; resources?: unknown };
    assert.equal(created.id, 'pod-1');
    assert.ok(t.sandboxes.has(hostSandboxId(t.a.uid, 'pod-1')));
    assert.deepEqual(created.labels, { 'kubicle.io/node': 'kubicle-virtual' }, 'the provider\'s labels are not shown');
    assert.equal(created.network, t.a.network);
    assert.deepEqual(created.resources, { cpuMillis: 1000, memoryBytes: 512 * 2 ** 20, pids: 1024 });
    assert.deepEqual(t.records, [hostSandboxId(t.a.uid, 'pod-1')]);
    assert.deepEqual((await t.cb.listSandboxes()).map((s) => s.id), []);
    await assert.rejects(t.cb.getSandbox('pod-1'), /no such sandbox/);
    await t.cb.removeSandbox('pod-1', 0);
    assert.ok(t.sandboxes.has(hostSandboxId(t.a.uid, 'pod-1')), "b's delete of the same id did not touch a's sandbox");
    assert.deepEqual((await t.ca.listSandboxes()).map((s) => s.id), ['pod-1']);
    // A kubelet lists its node's sandboxes by label; the agent is asked for the cluster's only,
    // and a selector naming another cluster's uid does not widen the list.
    assert.deepEqual((await t.ca.listSandboxes({ 'kubicle.io/node': 'kubicle-virtual' })).map((s) => s.id), ['pod-1']);
    assert.deepEqual((await t.ca.listSandboxes({ 'kubicle.io/node': 'other' })).map((s) => s.id), []);
    assert.deepEqual((await t.cb.listSandboxes({ [clusterLabel]: t.a.uid })).map((s) => s.id), []);
    const lists = t.seen.filter((s) => s.startsWith('GET /v1/sandboxes?'));
    assert.ok(lists.length > 0 && lists.every((s) => decodeURIComponent(s).includes(`${clusterLabel}=`)), `every list the agent saw was held to one cluster: ${lists.join(', ')}`);
    await assert.rejects(t.ca.listSandboxes({ 'bad key!': 'x' }), /labelSelector term .* is not key=value/);
  } finally {
    await t.close();
  }
});

test('a hostile control plane is refused with clear errors and reaches nothing host-wide', async () => {
  const t = await setup();
  try {
    const refusals: [Promise<unknown>, RegExp][] = [
      [t.ca.createSandbox({ id: '../escape', hostname: 'x' }), /spec\.id must match/],
      [t.ca.createSandbox({ id: 'x', hostname: 'x', network: 'host' }), /host networking is not available/],
      [t.ca.createSandbox({ id: 'x', hostname: 'x', volumes: [{ name: 'root', type: 'host', path: '/' }] }), /volume root: host path "\/" is not available to tenant clusters/],
      [t.ca.createSandbox({ id: 'x', hostname: 'x' }, 'kvm-direct'), /unknown runtime/],
      [t.ca.getSandbox('A_B'), /sandbox id "A_B" must match/],
      [t.ca.listNetworks(), /not available to a tenant cluster/],
      [t.ca.defineNetwork('other', { cidr: '10.0.0.0/24' }), /not available to a tenant cluster/],
      [t.ca.listImages(), /not available to a tenant cluster/],
    ];
    for (const [p, want] of refusals) await assert.rejects(p, want);
    await t.ca.createSandbox({ id: 'web', hostname: 'w' });
    await assert.rejects(t.ca.startContainer('web', { name: 'c', image: 'i', privileged: true }), /privileged containers are not available/);
    await assert.rejects(t.ca.startContainer('web', { name: 'c', image: 'i', capabilities: { add: ['NET_BIND_SERVICE', 'CAP_SYS_ADMIN'] } }), /capabilities SYS_ADMIN are not available/);
    const raw = await new Promise<{ status: number; body: string }>((resolve) => {
      const req = http.request({ socketPath: path.join(t.dir, 'a.sock'), path: '/v1/sandboxes', method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.end('{"spec": ');
    });
    assert.equal(raw.status, 400);
    assert.match(raw.body, /not JSON/);
    assert.equal(t.sandboxes.size, 1, 'nothing refused was created');
    assert.ok(!t.seen.some((s) => /networks|images/.test(s)), 'no refused request reached the agent');
  } finally {
    await t.close();
  }
});

test("a tenant's sandboxes together stay within its quota", async () => {
  const t = await setup({ cpuMillis: 2500, memoryBytes: 4 * 2 ** 30 });
  try {
    await t.ca.createSandbox({ id: 'one', hostname: 'x', resources: { cpuMillis: 2000 } });
    await assert.rejects(t.ca.createSandbox({ id: 'two', hostname: 'x' }), /exceeded quota: tenant acme, requested cpu=1000m, used 2000m, limited 2500m/);
    await t.ca.createSandbox({ id: 'three', hostname: 'x', resources: { cpuMillis: 500 } });
    // Another tenant's quota is its own.
    await t.cb.createSandbox({ id: 'two', hostname: 'x' });
  } finally {
    await t.close();
  }
});

test('a host without room refuses a sandbox whatever the quota, and placements at once do not share the last room', async () => {
  const t = await setup({}, { cpuMillis: 8000, memoryBytes: 2 ** 30 });
  try {
    const half = { memoryBytes: 512 * 2 ** 20, cpuMillis: 100 };
    // Three at once from two tenants (each under its own quota): the host has room for two.
    const tries = await Promise.allSettled([
      t.ca.createSandbox({ id: 'one', hostname: 'x', resources: half }),
      t.cb.createSandbox({ id: 'two', hostname: 'x', resources: half }),
      t.ca.createSandbox({ id: 'three', hostname: 'x', resources: half }),
    ]);
    assert.equal(tries.filter((r) => r.status === 'fulfilled').length, 2);
    const refused = tries.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    assert.match(String(refused.reason), /host h has no room for it: insufficient memory \(requested 512Mi, 1024Mi of 1024Mi allocated\)/);
    assert.equal(t.sandboxes.size, 2, 'nothing made for the refused one');
    // Room made, the next one fits.
    await (tries[0].status === 'fulfilled' ? t.ca : t.cb).removeSandbox(tries[0].status === 'fulfilled' ? 'one' : 'two', 0);
    await t.ca.createSandbox({ id: 'four', hostname: 'x', resources: half });
  } finally {
    await t.close();
  }
});

test("a cluster's local volumes are directories of its own on the host; no other host path is reachable", async () => {
  const t = await setup();
  try {
    const made = (await t.ca.createSandbox({ id: 'db', hostname: 'x', volumes: [{ name: 'data', type: 'host', path: '/var/lib/kubicle/local-path/pvc-1', create: 'directory' }] })) as SandboxStatus & { volumes?: { path: string }[] };
    assert.equal(made.volumes?.[0].path, path.join(t.a.volumes, 'pvc-1'));
    // The same name from another cluster is that cluster's directory, never a's.
    const other = (await t.cb.createSandbox({ id: 'db', hostname: 'x', volumes: [{ name: 'data', type: 'host', path: '/var/lib/kubicle/local-path/pvc-1', create: 'directory' }] })) as SandboxStatus & { volumes?: { path: string }[] };
    assert.equal(other.volumes?.[0].path, path.join(t.b.volumes, 'pvc-1'));
    for (const bad of ['/var/lib/kubicle/local-path/../../../etc', '/var/lib/kubicle/local-path', '/var/lib/kubicle/local-path/a/b', '/var/lib/kubicle/local-path/.hidden', '/var/lib/kubicle/local-path//x', 'var/lib/kubicle/local-path/x', '/etc']) {
      await assert.rejects(t.ca.createSandbox({ id: 'bad', hostname: 'x', volumes: [{ name: 'v', type: 'host', path: bad, create: 'directory' }] }), /volume v: host path .* is not available to tenant clusters/, bad);
      await assert.rejects(t.ca.removeHostDir(bad), /is not available to tenant clusters/, bad);
    }
    assert.ok(!t.sandboxes.has(hostSandboxId(t.a.uid, 'bad')), 'nothing refused was created');
    // A deleted volume's directory goes, in its own cluster only.
    for (const d of [path.join(t.a.volumes, 'pvc-1'), path.join(t.b.volumes, 'pvc-1')]) {
      await mkdir(d, { recursive: true });
      await writeFile(path.join(d, 'file'), 'x');
    }
    await t.ca.removeHostDir('/var/lib/kubicle/local-path/pvc-1');
    assert.deepEqual(await readdir(t.a.volumes), []);
    assert.deepEqual(await readdir(path.join(t.b.volumes, 'pvc-1')), ['file']);
  } finally {
    await t.close();
  }
});
