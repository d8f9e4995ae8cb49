import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EventRecorder } from '../../src/client/event-recorder.js';
import { Informer } from '../../src/client/informer.js';
import { KubeClient, type Obj } from '../../src/client/kube-client.js';
import { LeaderElector } from '../../src/client/leader-election.js';
import { silentLogger } from '../../src/observe/log.js';
import { cm, rawClient } from '../support/http.js';
import { cleanup, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/** client/'s controller machinery against a real kubicle: the informer, leader election and the event recorder. */
let k: Kubicle;
let client: KubeClient;
before(async () => {
  k = await startKubicle({ args: ['--compact-interval', '1'] });
  const { ca, cert, key } = await k.creds();
  client = new KubeClient({ server: k.url, caPem: ca, certPem: cert, keyPem: key });
});
after(async () => {
  client.close();
  await cleanup(k);
});

async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Informer', () => {
  it('reports adds, updates and deletes, and after a 410 relist reports what changed meanwhile', async () => {
    let api = await rawClient(k);
    const NS = '/api/v1/namespaces/default/configmaps';
    const seen: string[] = [];
    const ac = new AbortController();
    let inf = new Informer(client, NS, silentLogger);
    const watchEvents = (i: Informer) =>
      i.on({
        add: (o: Obj) => seen.push(`add ${o.metadata.name}`),
        update: (_: Obj, o: Obj) => seen.push(`update ${o.metadata.name} ${o.data?.k}`),
        delete: (o: Obj) => seen.push(`delete ${o.metadata.name}`),
      });
    watchEvents(inf);
    const running = inf.run(ac.signal);
    await inf.synced;
    await api.call('POST', NS, cm('i1'));
    await until(() => seen.includes('add i1'), 'add');
    await api.call('PATCH', `${NS}/i1`, '{"data":{"k":"v2"}}', { 'Content-Type': 'application/merge-patch+json' });
    await until(() => seen.includes('update i1 v2'), 'update');
    await api.call('POST', NS, cm('i2'));
    await api.call('DELETE', `${NS}/i2`);
    await until(() => seen.includes('delete i2'), 'delete');
    // Every namespace also holds kube-root-ca.crt, published by the controller manager.
    const mine = () =>
      inf
        .list()
        .map((o) => o.metadata.name)
        .filter((n) => n !== 'kube-root-ca.crt')
        .sort();
    assert.deepEqual(mine(), ['i1']);

    await api.call('POST', NS, cm('i4'));
    await until(() => seen.includes('add i4'), 'add i4');

    // The informer stops; the store moves on, the server restarts (its watch cache starts anew)
    // and compacts past the informer's version; the informer then resumes and must relist.
    ac.abort();
    await running;
    for (const n of ['x1', 'x2']) await api.call('POST', '/api/v1/namespaces/kube-public/configmaps', cm(n, 'kube-public'));
    api.close();
    await k.stop();
    await k.start();
    api = await rawClient(k);
    await api.call('POST', NS, cm('i3'));
    await api.call('PATCH', `${NS}/i1`, '{"data":{"k":"v3"}}', { 'Content-Type': 'application/merge-patch+json' });
    await api.call('DELETE', `${NS}/i4`);
    await new Promise((r) => setTimeout(r, 2500));
    const stale = await api.call('GET', `${NS}?watch=true&resourceVersion=${inf.resourceVersion}&timeoutSeconds=1`);
    assert.match(stale.text, /"code":410/, 'the informer version is compacted');
    const ac2 = new AbortController();
    const resumed = inf.run(ac2.signal);
    await until(() => seen.includes('add i3') && seen.includes('update i1 v3') && seen.includes('delete i4'), 'relist', 20_000);
    assert.deepEqual(mine(), ['i1', 'i3']);
    ac2.abort();
    await resumed;
    inf = undefined as unknown as Informer;
    api.close();
  });
});

describe('LeaderElector', () => {
  const cfg = { namespace: 'kube-system', name: 'test-lock', leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 150 };

  it('one leader at a time; a clean stop hands over at once; an expired holder is replaced', async () => {
    const leading = new Map<string, boolean>();
    let overlap = false;
    const candidate = (identity: string) => {
      const ac = new AbortController();
      const done = new LeaderElector(client, { ...cfg, identity }, silentLogger).run(ac.signal, async (signal) => {
        leading.set(identity, true);
        if ([...leading.values()].filter(Boolean).length > 1) overlap = true;
        await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
        leading.set(identity, false);
      });
      return { ac, done };
    };
    const a = candidate('a');
    const b = candidate('b');
    await until(() => [...leading.values()].some(Boolean), 'a leader');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal([...leading.values()].filter(Boolean).length, 1);
    const [first, second] = leading.get('a') ? [a, b] : [b, a];
    const secondId = first === a ? 'b' : 'a';
    const stoppedAt = Date.now();
    first.ac.abort();
    await first.done;
    await until(() => leading.get(secondId) === true, 'handover');
    assert.ok(Date.now() - stoppedAt < 1000, 'a released lease is taken without waiting for expiry');
    second.ac.abort();
    await second.done;
    assert.equal(overlap, false, 'never two leaders at once');

    // A holder that stopped renewing (a crash) is replaced only after its lease expires.
    const lease = await client.get('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/test-lock');
    lease.spec = { ...lease.spec, holderIdentity: 'ghost', leaseDurationSeconds: 2, renewTime: new Date().toISOString().replace('Z', '000Z') };
    await client.update('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/test-lock', lease);
    const c = candidate('c');
    const start = Date.now();
    await until(() => leading.get('c') === true, 'takeover after expiry');
    assert.ok(Date.now() - start >= 1500, 'not before the ghost lease expired');
    const after = await client.get('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/test-lock');
    assert.equal(after.spec.holderIdentity, 'c');
    assert.ok(after.spec.leaseTransitions >= 2);
    c.ac.abort();
    await c.done;
  });

  it('a leader renews without reading; a lease taken from under it is noticed at the next renewal', async () => {
    const name = 'fast-lock';
    const at = `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${name}`;
    let reads = 0;
    // The same client, its reads counted.
    const counting = Object.assign(Object.create(client), {
      get: (p: string) => {
        if (p === at) reads++;
        return client.get(p);
      },
    }) as typeof client;
    let leading = false;
    let lost = false;
    const ac = new AbortController();
    const done = new LeaderElector(counting, { ...cfg, name, identity: 'fast' }, silentLogger).run(ac.signal, async (signal) => {
      leading = true;
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
      leading = false;
      lost = true;
    });
    await until(() => leading, 'leading');
    const readsThen = reads;
    const renewedThen = (await client.get(at)).spec.renewTime;
    await new Promise((r) => setTimeout(r, 1000));
    assert.notEqual((await client.get(at)).spec.renewTime, renewedThen, 'renewed meanwhile');
    assert.equal(reads, readsThen, 'renewals wrote the lease without reading it');
    // Another holder writes the lease (a partition healed, say): the next renewal conflicts, reads, and steps down.
    const lease = await client.get(at);
    lease.spec = { ...lease.spec, holderIdentity: 'usurper', leaseDurationSeconds: 60, renewTime: new Date().toISOString().replace('Z', '000Z') };
    await client.update(at, lease);
    await until(() => lost, 'the leader steps down');
    assert.ok(reads > readsThen, 'after the conflict it read the lease');
    ac.abort();
    await done;
    assert.equal((await client.get(at)).spec.holderIdentity, 'usurper', 'a stopped non-leader does not release what it does not hold');
  });

  it('timings that cannot work are refused before anything starts', async () => {
    const dataDir = path.join(os.tmpdir(), `kubicle-e2e-leader-flags-${process.pid}`);
    for (const [flags, want] of [
      [['--leader-elect-retry-period', '20'], /--leader-elect-retry-period \(20\) must be less than --leader-elect-renew-deadline \(10\), and that less than --leader-elect-lease-duration \(15\)/],
      [['--leader-elect-lease-duration', 'abc'], /--leader-elect-lease-duration "abc" must be a positive number of seconds/],
      [['--leader-elect-renew-deadline', '0'], /--leader-elect-renew-deadline "0" must be a positive number of seconds/],
    ] as const) {
      const r = await promisify(execFile)(process.execPath, [path.resolve('bin/kubicle.js'), 'standalone', '--data-dir', dataDir, '--port', '0', '--node', 'none', ...flags]).then(
        () => ({ code: 0, stderr: '' }),
        (err: { code: number; stderr: string }) => err,
      );
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, want);
      assert.equal(existsSync(dataDir), false, 'nothing was made');
    }
  });
});

describe('EventRecorder', () => {
  it('writes events in order without waiting, counts repeats on one Event, and kubectl describe shows them', async () => {
    const api = await rawClient(k);
    const created = await api.call('POST', '/api/v1/namespaces/default/configmaps', cm('evented'));
    assert.equal(created.status, 201);
    const obj = created.json as Obj;
    const events = new EventRecorder(client, 'test-controller', silentLogger);
    const began = performance.now();
    for (let i = 0; i < 5; i++) events.record(obj, 'v1', 'ConfigMap', 'Warning', 'Flapping', 'the same thing again');
    for (let i = 0; i < 3; i++) events.record(obj, 'v1', 'ConfigMap', 'Normal', 'Step', `step ${i}`);
    // Recording queues: nothing waits for the API server.
    assert.ok(performance.now() - began < 50, 'record() returns at once');
    await events.sent();
    const list = (await api.call('GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Devented')).json as Obj;
    const flapping = list.items.filter((e: Obj) => e.reason === 'Flapping');
    assert.equal(flapping.length, 1, 'repeats make no new Event');
    assert.equal(flapping[0].count, 5);
    assert.equal(flapping[0].source.component, 'test-controller');
    assert.equal(flapping[0].involvedObject.uid, obj.metadata.uid);
    assert.deepEqual(
      list.items
        .filter((e: Obj) => e.reason === 'Step')
        .sort((a: Obj, b: Obj) => Number(a.metadata.resourceVersion) - Number(b.metadata.resourceVersion))
        .map((e: Obj) => [e.message, e.count]),
      [
        ['step 0', 1],
        ['step 1', 1],
        ['step 2', 1],
      ],
    );
    const kc = await kubectlFor(k, '1.33');
    const described = await kc(['describe', 'configmap', 'evented']);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /Warning\s+Flapping\s+\S+ \(x5 over \S+\)\s+test-controller\s+the same thing again/);

    // The Event deleted meanwhile: the next repeat starts a new one.
    await api.call('DELETE', `/api/v1/namespaces/default/events/${flapping[0].metadata.name}`);
    events.record(obj, 'v1', 'ConfigMap', 'Warning', 'Flapping', 'the same thing again');
    await events.sent();
    const again = ((await api.call('GET', '/api/v1/namespaces/default/events?fieldSelector=reason%3DFlapping')).json as Obj).items;
    assert.deepEqual(
      again.map((e: Obj) => e.count),
      [1],
    );
  });

  it('a queue full of events drops the newest and counts them; what was queued is written', async () => {
    const obj = { metadata: { name: 'flood', namespace: 'default', uid: 'flood-uid' } };
    const events = new EventRecorder(client, 'flood-controller', silentLogger);
    for (let i = 0; i < 1200; i++) events.record(obj, 'v1', 'ConfigMap', 'Normal', 'Flood', `event ${i}`);
    assert.ok(events.dropped >= 199 && events.dropped <= 200, `dropped ${events.dropped}`);
    await events.sent();
    const api = await rawClient(k);
    const list = (await api.call('GET', '/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dflood')).json as Obj;
    assert.equal(list.items.length, 1200 - events.dropped);
    assert.ok(!list.items.some((e: Obj) => e.message === 'event 1199'), 'the newest were dropped');
  });
});
