import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type EtcdProcess, enableAuth, startEtcd } from '../../../test/support/etcd.js';
import { EtcdBackend } from './etcd-backend.js';
import { EtcdTenancy } from './etcd-tenancy.js';

let etcd: EtcdProcess;
let tenancy: EtcdTenancy;
before(async () => {
  etcd = await startEtcd();
  const root = await enableAuth(etcd);
  tenancy = new EtcdTenancy(`${etcd.url}/kubicle/stores?user=root&password=${root}`);
});
after(async () => {
  tenancy?.close();
  await etcd?.stop();
});

const backendFor = (g: { root: string; user: string; password: string }) =>
  new EtcdBackend({ endpoints: [etcd.endpoint], root: g.root.replace(/\/$/, ''), auth: { username: g.user, password: g.password } });

test("each store's user reads and writes its own prefix and nothing of another's", async () => {
  const a = await tenancy.grant('store-a');
  const b = await tenancy.grant('store-b');
  assert.equal(a.root, '/kubicle/stores/store-a/');
  const sa = backendFor(a);
  const sb = backendFor(b);
  try {
    await sa.create('/registry/configmaps/x', Buffer.from('a'));
    await sb.create('/registry/configmaps/x', Buffer.from('b'));
    assert.equal((await sa.get('/registry/configmaps/x'))?.value.toString(), 'a');
    assert.ok((await sa.currentRevision()) > 0);
    // A's credentials aimed at B's prefix: the store's root moved by hand, as a hostile control plane would.
    const stolen = new EtcdBackend({ endpoints: [etcd.endpoint], root: '/kubicle/stores/store-b', auth: { username: a.user, password: a.password } });
    await assert.rejects(stolen.get('/registry/configmaps/x'), /permission denied/i);
    await assert.rejects(stolen.create('/registry/configmaps/y', Buffer.from('evil')), /permission denied/i);
    await stolen.close();
    const wrong = new EtcdBackend({ endpoints: [etcd.endpoint], root: '/kubicle/stores/store-a', auth: { username: a.user, password: 'guess' } });
    await assert.rejects(wrong.get('/registry/configmaps/x'), /authentication failed|invalid/i);
    await wrong.close();
  } finally {
    await sa.close();
    await sb.close();
  }
});

test('a second grant replaces the password; revoke deletes the keys, the user and the role', async () => {
  const first = await tenancy.grant('store-c');
  const second = await tenancy.grant('store-c');
  assert.notEqual(first.password, second.password);
  const old = backendFor(first);
  await assert.rejects(old.get('/x'), /authentication failed|invalid/i);
  await old.close();
  const s = backendFor(second);
  await s.create('/registry/k', Buffer.from('v'));
  await s.close();
  await tenancy.revoke('store-c');
  await tenancy.revoke('store-c');
  const gone = backendFor(second);
  await assert.rejects(gone.get('/registry/k'), /authentication failed|invalid/i);
  await gone.close();
  // The keys went too: a new grant of the same id finds an empty prefix.
  const again = backendFor(await tenancy.grant('store-c'));
  assert.equal(await again.get('/registry/k'), null);
  await again.close();
  await assert.rejects(tenancy.grant('Bad_Id'), /DNS label/);
});
