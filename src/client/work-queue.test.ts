import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WorkQueue } from './work-queue.js';

test('deduplicates waiting keys and re-runs a key added while it is processed', async () => {
  const q = new WorkQueue();
  q.add('a');
  q.add('a');
  q.add('b');
  assert.equal(q.length, 2);
  const k = await q.get();
  assert.equal(k, 'a');
  q.add('a'); // while processing: not handed out twice, but queued again after done
  assert.equal(await q.get(), 'b');
  assert.equal(q.length, 0);
  q.done('a');
  assert.equal(await q.get(), 'a');
  q.shutDown();
  assert.equal(await q.get(), undefined);
});

test('failed keys back off exponentially until forgotten', async () => {
  const q = new WorkQueue(20, 1000);
  const ac = new AbortController();
  const attempts: number[] = [];
  const start = Date.now();
  const run = q.run(
    2,
    async (key) => {
      attempts.push(Date.now() - start);
      if (attempts.length < 4) throw new Error(`fail ${key}`);
      ac.abort();
    },
    ac.signal,
  );
  q.add('x');
  await run;
  assert.equal(attempts.length, 4);
  // Delays 20, 40, 80 ms between attempts: the fourth comes no sooner than 140 ms in.
  assert.ok(attempts[3] >= 130, `attempts at ${attempts}`);
  assert.equal(q.retries('x'), 0, 'success forgets the key');
});

test('with a priority, higher keys are handed out first and equal ones in order of arrival', async () => {
  const prio: Record<string, number> = { low1: 0, low2: 0, high1: 10, mid: 5, high2: 10 };
  const q = new WorkQueue(5, 100, (key) => prio[key]);
  for (const key of ['low1', 'high1', 'low2', 'mid', 'high2']) q.add(key);
  const order: string[] = [];
  for (let i = 0; i < 5; i++) order.push((await q.get())!);
  assert.deepEqual(order, ['high1', 'high2', 'mid', 'low1', 'low2']);
  q.shutDown();
});
