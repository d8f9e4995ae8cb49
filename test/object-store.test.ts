import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { mock, test } from 'node:test';
import { builtinRegistry } from '../src/api/registry.js';
import { ObjectStore } from '../src/apiserver/object-store.js';
import { SqliteBackend } from '../src/storage/sqlite/sqlite-backend.js';

/**
 * Generated names on a real (SQLite) store. Math.random is held to a fixed sequence so that
 * the generated suffix collides on purpose; everything else is the store's own.
 */
test('a generated name that is taken is generated again, a few times, as upstream retries it', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-os-'));
  const backend = new SqliteBackend(path.join(dir, 'store.db'));
  const store = new ObjectStore(backend);
  const rt = builtinRegistry().lookup('', 'v1', 'configmaps');
  assert.ok(rt);
  const cm = () => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'ev.' }, data: {} }) as never;
  try {
    const random = mock.method(Math, 'random', () => 0);
    const first = await store.create(rt, 'default', cm());
    assert.equal(first.metadata.name, 'ev.bbbbb');
    // The same suffix first, then another: the second object gets the other one.
    let calls = 0;
    random.mock.mockImplementation(() => (calls++ < 5 ? 0 : 0.5));
    const second = await store.create(rt, 'default', cm());
    assert.notEqual(second.metadata.name, 'ev.bbbbb');
    assert.match(second.metadata.name as string, /^ev\.[a-z0-9]{5}$/);
    // Always the same suffix: after 8 tries the conflict is the caller's, as upstream's is.
    random.mock.mockImplementation(() => 0);
    await assert.rejects(store.create(rt, 'default', cm()), /configmaps "ev.bbbbb" already exists/);
    // A name the client chose is never changed.
    random.mock.restore();
    await assert.rejects(store.create(rt, 'default', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ev.bbbbb' }, data: {} } as never), /already exists/);
  } finally {
    mock.restoreAll();
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
});
