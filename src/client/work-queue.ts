import { isCode } from '../observe/errors.js';

/**
 * A work queue of keys, as controllers use it: a key waiting is held once however often it is
 * added; a key being processed is not handed to a second worker, and if it is added meanwhile
 * it is processed again afterwards. Failed keys come back after an exponential back-off per key
 * (5 ms doubling up to maxDelayMs) until `forget`. With `priority`, a key is handed out before
 * every waiting key of lower priority (and after those of equal priority: FIFO among equals), as
 * the scheduler's active queue orders pods.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly waiting = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private wake: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly baseDelayMs = 5,
    private readonly maxDelayMs = 60_000,
    private readonly priority?: (key: string) => number,
  ) {}

  /** Queues a key. Idempotent while it waits. */
  add(key: string): void {
    if (this.closed) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.waiting.has(key)) return;
    this.waiting.add(key);
    this.enqueue(key);
    this.wake.shift()?.();
  }

  private enqueue(key: string): void {
    const q = this.queue;
    const rank = this.priority;
    // The common case, equal priorities, appends without a search.
    if (!rank || !q.length || rank(q[q.length - 1]) >= rank(key)) {
      q.push(key);
      return;
    }
    const p = rank(key);
    let lo = 0;
    let hi = q.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (rank(q[mid]) >= p) lo = mid + 1;
      else hi = mid;
    }
    q.splice(lo, 0, key);
  }

  addAfter(key: string, ms: number): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.add(key);
    }, ms);
    this.timers.add(t);
  }

  /** Re-queues a failed key after its back-off; the back-off doubles each time until forget. */
  addRateLimited(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.addAfter(key, Math.min(this.baseDelayMs * 2 ** n, this.maxDelayMs));
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key, waiting for one; undefined once shut down. Call done(key) after processing. */
  async get(): Promise<string | undefined> {
    while (!this.queue.length) {
      if (this.closed) return undefined;
      await new Promise<void>((r) => this.wake.push(r));
    }
    const key = this.queue.shift()!;
    this.waiting.delete(key);
    this.processing.add(key);
    return key;
  }

  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  get length(): number {
    return this.queue.length;
  }

  shutDown(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const w of this.wake.splice(0)) w();
  }

  /**
   * Runs `workers` loops handing keys to `sync` until the signal aborts. A key whose sync
   * throws is retried with back-off; one that succeeds is forgotten. A Conflict (a write from a
   * stale cache) is retried without being reported: it is how optimistic concurrency works.
   */
  async run(workers: number, sync: (key: string) => Promise<void>, signal: AbortSignal, onError?: (key: string, err: unknown) => void): Promise<void> {
    signal.addEventListener('abort', () => this.shutDown(), { once: true });
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let key = await this.get(); key !== undefined; key = await this.get()) {
          try {
            await sync(key);
            this.forget(key);
          } catch (err) {
            if (!isCode(err, 'Conflict')) onError?.(key, err);
            this.addRateLimited(key);
          } finally {
            this.done(key);
          }
        }
      }),
    );
  }
}
