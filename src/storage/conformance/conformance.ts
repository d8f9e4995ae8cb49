import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCode } from '../../observe/errors.js';
import type { Backend, WatchEvent } from '../backend.js';

/**
 * The one conformance suite of the Backend family. Every backend's test file calls this with a
 * factory that returns a fresh, empty store (its own file, or its own etcd prefix).
 */
const enc = (s: string) => Buffer.from(s);
const dec = (b: Uint8Array) => Buffer.from(b).toString();

async function rejectsWith(p: Promise<unknown>, code: Parameters<typeof isCode>[1]): Promise<void> {
  await assert.rejects(p, (err) => {
    assert.ok(isCode(err, code), `expected ${code}, got ${(err as Error)?.message}`);
    return true;
  });
}

function collector() {
  const events: WatchEvent[] = [];
  const errors: Error[] = [];
  let wake: (() => void) | undefined;
  return {
    events,
    errors,
    listener: {
      event(ev: WatchEvent) {
        events.push(ev);
        wake?.();
      },
      error(err: Error) {
        errors.push(err);
        wake?.();
      },
    },
    async waitFor(n: number, ms = 5000): Promise<void> {
      const deadline = Date.now() + ms;
      while (events.length < n) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} events, have ${events.length}`);
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    },
  };
}

export function backendConformance(name: string, fresh: () => Promise<Backend>): void {
  describe(`Backend conformance: ${name}`, () => {
    it('creates, reads and refuses duplicates; revisions increase', async () => {
      const b = await fresh();
      try {
        const r0 = await b.currentRevision();
        const a = await b.create('/r/a', enc('1'));
        assert.ok(a.modRevision > r0);
        assert.equal(a.createRevision, a.modRevision);
        assert.equal(await b.currentRevision(), a.modRevision);
        const got = await b.get('/r/a');
        assert.equal(dec(got!.value), '1');
        assert.equal(got!.modRevision, a.modRevision);
        assert.equal(await b.get('/r/missing'), null);
        await rejectsWith(b.create('/r/a', enc('2')), 'AlreadyExists');
        assert.equal(dec((await b.get('/r/a'))!.value), '1', 'a failed create changes nothing');
      } finally {
        await b.close();
      }
    });

    it('updates and deletes only at the expected revision', async () => {
      const b = await fresh();
      try {
        const a = await b.create('/r/a', enc('1'));
        const a2 = await b.update('/r/a', enc('2'), a.modRevision);
        assert.ok(a2.modRevision > a.modRevision);
        assert.equal(a2.createRevision, a.createRevision);
        await rejectsWith(b.update('/r/a', enc('3'), a.modRevision), 'Conflict');
        await rejectsWith(b.update('/r/none', enc('3'), 1), 'NotFound');
        await rejectsWith(b.delete('/r/a', a.modRevision), 'Conflict');
        assert.equal(dec((await b.get('/r/a'))!.value), '2');
        const del = await b.delete('/r/a', a2.modRevision);
        assert.equal(dec(del.value), '2', 'delete returns the deleted value');
        assert.ok(del.modRevision > a2.modRevision, 'delete has its own revision');
        assert.equal(await b.get('/r/a'), null);
        await rejectsWith(b.delete('/r/a'), 'NotFound');
        // The key can be created again after deletion.
        const again = await b.create('/r/a', enc('new'));
        assert.ok(again.createRevision > del.modRevision);
      } finally {
        await b.close();
      }
    });

    it('lists a prefix at a revision with limit and continue', async () => {
      const b = await fresh();
      try {
        for (let i = 0; i < 7; i++) await b.create(`/p/k${i}`, enc(String(i)));
        await b.create('/q/other', enc('x'));
        await b.create('/p0/outside', enc('x'));
        const all = await b.list('/p/');
        assert.deepEqual(
          all.items.map((i) => i.key),
          ['/p/k0', '/p/k1', '/p/k2', '/p/k3', '/p/k4', '/p/k5', '/p/k6'],
        );
        assert.equal(all.more, false);
        assert.equal(await b.count('/p/'), 7);
        const page1 = await b.list('/p/', { limit: 3 });
        assert.equal(page1.items.length, 3);
        assert.equal(page1.more, true);
        // Writes between pages do not show in later pages read at the first page's revision.
        await b.delete('/p/k4');
        await b.create('/p/k35', enc('late'));
        const next = `${page1.items[2].key}\0`;
        const page2 = await b.list('/p/', { limit: 3, startKey: next, revision: page1.revision });
        assert.deepEqual(
          page2.items.map((i) => i.key),
          ['/p/k3', '/p/k4', '/p/k5'],
        );
        const page3 = await b.list('/p/', { limit: 3, startKey: `${page2.items[2].key}\0`, revision: page1.revision });
        assert.deepEqual(
          page3.items.map((i) => i.key),
          ['/p/k6'],
        );
        assert.equal(page3.more, false);
        const now = await b.list('/p/');
        assert.deepEqual(
          now.items.map((i) => i.key),
          ['/p/k0', '/p/k1', '/p/k2', '/p/k3', '/p/k35', '/p/k5', '/p/k6'],
        );
        await rejectsWith(b.list('/p/', { revision: now.revision + 1000 }), 'TooNew');
      } finally {
        await b.close();
      }
    });

    it('reads an older revision of a key', async () => {
      const b = await fresh();
      try {
        const a = await b.create('/r/a', enc('1'));
        await b.update('/r/a', enc('2'), a.modRevision);
        assert.equal(dec((await b.get('/r/a', a.modRevision))!.value), '1');
        assert.equal(dec((await b.get('/r/a'))!.value), '2');
      } finally {
        await b.close();
      }
    });

    it('watches a prefix from a revision, with previous values, in order', async () => {
      const b = await fresh();
      try {
        const start = await b.currentRevision();
        const a = await b.create('/w/a', enc('1'));
        await b.create('/x/skip', enc('no'));
        const c = collector();
        const w = await b.watch('/w/', start, c.listener);
        const a2 = await b.update('/w/a', enc('2'), a.modRevision);
        await b.delete('/w/a', a2.modRevision);
        await b.create('/w/b', enc('3'));
        await c.waitFor(4);
        w.cancel();
        assert.deepEqual(
          c.events.map((e) => [e.type, e.kv.key, dec(e.kv.value), e.prev ? dec(e.prev.value) : null]),
          [
            ['put', '/w/a', '1', null],
            ['put', '/w/a', '2', '1'],
            ['delete', '/w/a', '2', '2'],
            ['put', '/w/b', '3', null],
          ],
        );
        const revs = c.events.map((e) => e.kv.modRevision);
        assert.deepEqual([...revs].sort((x, y) => x - y), revs, 'events in revision order');
        // After cancel nothing more arrives.
        await b.create('/w/c', enc('4'));
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(c.events.length, 4);
      } finally {
        await b.close();
      }
    });

    it('compacts history: old revisions answer Gone, current state stays', async () => {
      const b = await fresh();
      try {
        const a = await b.create('/c/a', enc('1'));
        const a2 = await b.update('/c/a', enc('2'), a.modRevision);
        const gone = await b.create('/c/gone', enc('x'));
        await b.delete('/c/gone', gone.modRevision);
        await b.create('/c/b', enc('3'));
        const rev = await b.currentRevision();
        await b.compact(rev);
        await b.compact(rev); // idempotent
        await rejectsWith(b.get('/c/a', a.modRevision), 'Gone');
        await rejectsWith(b.list('/c/', { revision: a.modRevision }), 'Gone');
        await rejectsWith(b.watch('/c/', a.modRevision - 1, collector().listener), 'Gone');
        assert.equal(dec((await b.get('/c/a'))!.value), '2');
        assert.equal((await b.get('/c/a'))!.modRevision, a2.modRevision);
        assert.deepEqual(
          (await b.list('/c/')).items.map((i) => i.key),
          ['/c/a', '/c/b'],
        );
        // Watching from the compacted revision itself works and sees new writes.
        const c = collector();
        const w = await b.watch('/c/', rev, c.listener);
        await b.create('/c/z', enc('z'));
        await c.waitFor(1);
        w.cancel();
        assert.equal(c.events[0].kv.key, '/c/z');
      } finally {
        await b.close();
      }
    });

    it('lets exactly one of concurrent creates and updates win', async () => {
      const b = await fresh();
      try {
        const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => b.create('/race/k', enc(String(i)))));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        const cur = (await b.get('/race/k'))!;
        const ups = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => b.update('/race/k', enc(`u${i}`), cur.modRevision)));
        assert.equal(ups.filter((r) => r.status === 'fulfilled').length, 1);
        for (const r of ups) if (r.status === 'rejected') assert.ok(isCode(r.reason, 'Conflict'));
      } finally {
        await b.close();
      }
    });
  });
}
