import type { KubeObject } from '../api/object.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { Backend, Watch, WatchEvent } from '../storage/backend.js';

/**
 * One backend watch over every object, fanned out in memory to API watchers (upstream's
 * "cacher"). Events are decoded once and kept in a window so a watcher that starts from a
 * recent resourceVersion is served without touching the store; older starts fall back to a
 * direct backend watch, which answers Gone once compacted.
 */
export interface CachedEvent {
  type: 'put' | 'delete';
  key: string;
  revision: number;
  /** The object after the event (for delete: the last value, with the delete's revision). */
  object: KubeObject;
  /** The object before the event; absent for a create. */
  prev?: KubeObject;
  /** Serialisations per output version, shared by every watcher of that version. */
  encoded?: Map<string, string>;
}

export type Subscriber = (ev: CachedEvent) => void;

interface Sub {
  prefix: string;
  fn: Subscriber;
  onError: (err: Error) => void;
}

export function decodeEvent(ev: WatchEvent): CachedEvent {
  const parse = (v: Uint8Array, rv: number): KubeObject => {
    const o = JSON.parse(Buffer.from(v).toString()) as KubeObject;
    o.metadata.resourceVersion = String(rv);
    return o;
  };
  return {
    type: ev.type,
    key: ev.kv.key,
    revision: ev.kv.modRevision,
    object: parse(ev.kv.value, ev.kv.modRevision),
    prev: ev.prev?.value.length ? parse(ev.prev.value, ev.prev.modRevision) : undefined,
  };
}

export class WatchCache {
  private readonly window: CachedEvent[] = [];
  private readonly subs = new Set<Sub>();
  /** Every event after this revision is in the window. */
  private oldest = 0;
  private latest = 0;
  private watch?: Watch;
  private stopped = false;
  private waiters: { rev: number; resolve: () => void }[] = [];

  constructor(
    private readonly backend: Backend,
    private readonly log: Logger,
    private readonly capacity = 20_000,
    private readonly root = '/registry/',
  ) {}

  get revision(): number {
    return this.latest;
  }

  async start(): Promise<void> {
    const rev = await this.backend.currentRevision();
    this.oldest = rev;
    this.latest = rev;
    await this.follow(rev);
  }

  private async follow(from: number): Promise<void> {
    this.watch = await this.backend.watch(this.root, from, {
      event: (ev) => this.onEvent(decodeEvent(ev)),
      error: (err) => void this.restart(err),
    });
  }

  private async restart(err: Error): Promise<void> {
    if (this.stopped) return;
    this.log.warn('watch cache lost its store watch', { err });
    for (;;) {
      if (this.stopped) return;
      try {
        if (isCode(err, 'Gone')) {
          // History is gone: every watcher must relist.
          this.window.length = 0;
          for (const s of this.subs) s.onError(new KubicleError('Gone', 'too old resource version'));
          this.subs.clear();
          const rev = await this.backend.currentRevision();
          this.oldest = this.latest = rev;
        }
        await this.follow(this.latest);
        return;
      } catch (e) {
        err = e as Error;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private onEvent(ev: CachedEvent): void {
    this.window.push(ev);
    this.latest = ev.revision;
    if (this.window.length > this.capacity) {
      const dropped = this.window.splice(0, this.window.length - this.capacity);
      this.oldest = dropped[dropped.length - 1].revision;
    }
    for (const s of this.subs) if (ev.key.startsWith(s.prefix)) s.fn(ev);
    if (this.waiters.length) {
      this.waiters = this.waiters.filter((w) => {
        if (w.rev > this.latest) return true;
        w.resolve();
        return false;
      });
    }
  }

  /** Resolves once the cache has seen `rev` (or after `ms`). */
  async waitFor(rev: number, ms: number): Promise<boolean> {
    if (this.latest >= rev) return true;
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.latest >= rev), ms);
      this.waiters.push({
        rev,
        resolve: () => {
          clearTimeout(t);
          resolve(true);
        },
      });
    });
  }

  /**
   * Delivers events under prefix after `afterRevision`: first those in the window, then live.
   * Falls back to a direct store watch when the window does not reach back far enough (that
   * rejects with Gone when the store has compacted the revision).
   */
  async subscribe(prefix: string, afterRevision: number, fn: Subscriber, onError: (err: Error) => void): Promise<() => void> {
    if (this.stopped) throw new KubicleError('Unavailable', 'server shutting down');
    if (afterRevision < this.oldest) {
      const w = await this.backend.watch(prefix, afterRevision, { event: (ev) => fn(decodeEvent(ev)), error: onError });
      return () => w.cancel();
    }
    for (const ev of this.window) if (ev.revision > afterRevision && ev.key.startsWith(prefix)) fn(ev);
    const sub: Sub = { prefix, fn: (ev) => ev.revision > afterRevision && fn(ev), onError };
    this.subs.add(sub);
    return () => this.subs.delete(sub);
  }

  get watchers(): number {
    return this.subs.size;
  }

  stop(): void {
    this.stopped = true;
    this.watch?.cancel();
    for (const s of this.subs) s.onError(new KubicleError('Unavailable', 'server shutting down'));
    this.subs.clear();
  }
}
