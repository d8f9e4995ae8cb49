import type { Logger } from '../observe/log.js';
import type { KubeClient, Obj } from './kube-client.js';

/**
 * A shared informer: keeps an in-memory copy of one collection (LIST, then WATCH from the
 * list's resourceVersion, resuming after a stream ends and relisting after 410 Gone) and tells
 * its handlers of every change. After a relist, objects that vanished meanwhile are reported as
 * deletes and changed ones as updates, so handlers never miss a transition's end state.
 */
export interface InformerHandlers {
  add?(obj: Obj): void;
  update?(old: Obj, obj: Obj): void;
  delete?(obj: Obj): void;
}

export function objectKey(obj: Obj): string {
  const m = obj.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name}` : m.name;
}

export class Informer {
  private readonly items = new Map<string, Obj>();
  /** The same objects by namespace, so a controller's sync reads its namespace, not the cluster. */
  private readonly byNamespace = new Map<string, Map<string, Obj>>();
  private readonly handlers: InformerHandlers[] = [];
  private rv = '';
  private markSynced!: () => void;
  /** Resolves after the first full list has been delivered to the handlers. */
  readonly synced = new Promise<void>((r) => {
    this.markSynced = r;
  });

  /** `path` is a collection URL with optional query, e.g. /api/v1/pods?labelSelector=app%3Dx. */
  constructor(
    private readonly client: KubeClient,
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  on(h: InformerHandlers): void {
    this.handlers.push(h);
  }

  get(key: string): Obj | undefined {
    return this.items.get(key);
  }

  list(): Obj[] {
    return [...this.items.values()];
  }

  /** The objects of one namespace. */
  listNamespace(ns: string): Obj[] {
    return [...(this.byNamespace.get(ns)?.values() ?? [])];
  }

  private put(key: string, obj: Obj): void {
    this.items.set(key, obj);
    const ns = obj.metadata?.namespace ?? '';
    let m = this.byNamespace.get(ns);
    if (!m) this.byNamespace.set(ns, (m = new Map()));
    m.set(key, obj);
  }

  private remove(key: string, obj: Obj): void {
    this.items.delete(key);
    const ns = obj.metadata?.namespace ?? '';
    const m = this.byNamespace.get(ns);
    m?.delete(key);
    if (m && !m.size) this.byNamespace.delete(ns);
  }

  get resourceVersion(): string {
    return this.rv;
  }

  private emit(kind: 'add' | 'update' | 'delete', a: Obj, b?: Obj): void {
    for (const h of this.handlers) {
      try {
        if (kind === 'add') h.add?.(a);
        else if (kind === 'update') h.update?.(a, b!);
        else h.delete?.(a);
      } catch (err) {
        this.log.error('informer handler failed', { path: this.path, err });
      }
    }
  }

  private replace(fresh: Obj[]): void {
    const seen = new Set<string>();
    for (const obj of fresh) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.items.get(key);
      this.put(key, obj);
      if (!old) this.emit('add', obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit('update', old, obj);
    }
    for (const [key, old] of [...this.items]) {
      if (!seen.has(key)) {
        this.remove(key, old);
        this.emit('delete', old);
      }
    }
  }

  /** Runs until the signal aborts. Never throws: failures are logged and retried. */
  async run(signal: AbortSignal): Promise<void> {
    const sep = this.path.includes('?') ? '&' : '?';
    let backoff = 200;
    while (!signal.aborted) {
      try {
        if (!this.rv) {
          const list = await this.client.get(`${this.path}${sep}resourceVersion=0`);
          this.replace(list.items ?? []);
          this.rv = list.metadata?.resourceVersion ?? '';
          this.markSynced();
        }
        let expired = false;
        await this.client.watch(
          `${this.path}${sep}watch=true&allowWatchBookmarks=true&timeoutSeconds=${300 + Math.floor(Math.random() * 300)}&resourceVersion=${this.rv}`,
          (ev) => {
            if (ev.type === 'ERROR') {
              expired = ev.object?.code === 410;
              return;
            }
            this.rv = ev.object?.metadata?.resourceVersion ?? this.rv;
            if (ev.type === 'BOOKMARK') return;
            const key = objectKey(ev.object);
            const old = this.items.get(key);
            if (ev.type === 'DELETED') {
              this.remove(key, ev.object);
              this.emit('delete', ev.object);
            } else {
              this.put(key, ev.object);
              if (old) this.emit('update', old, ev.object);
              else this.emit('add', ev.object);
            }
          },
          signal,
        );
        if (expired) {
          this.log.info('informer relisting after 410', { path: this.path });
          this.rv = '';
        }
        backoff = 200;
      } catch (err) {
        if (signal.aborted) return;
        this.log.warn('informer list/watch failed, retrying', { path: this.path, err });
        this.rv = '';
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }
}
