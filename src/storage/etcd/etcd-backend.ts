import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import type * as RPC from 'etcd3/lib/rpc.js';
import { KubicleError } from '../../observe/errors.js';
import { type Backend, type KeyValue, type ListOptions, type ListResult, prefixEnd, type Watch, type WatchListener } from '../backend.js';

/**
 * EtcdBackend: the Backend contract on a real etcd 3.4 (the production store). The mapping is
 * direct: resourceVersion = mod_revision, list revision = header.revision, create = a
 * transaction on mod_revision == 0, update/delete = a transaction on mod_revision == expected.
 * Every key lives under `root`, so several stores can share one etcd, each behind its own
 * etcd user and role.
 */
export interface EtcdBackendOptions {
  /** etcd endpoints, e.g. ["http://127.0.0.1:2379"]. */
  endpoints: string[];
  /** Prefix for every key of this store, e.g. "/kubicle/cluster1". */
  root?: string;
  auth?: { username: string; password: string };
}

export class EtcdBackend implements Backend {
  private readonly client: Etcd3;
  private readonly root: string;
  private closed = false;

  constructor(opts: EtcdBackendOptions) {
    // Large ranges are paged by callers, but one page of big objects can pass gRPC's 4 MiB default.
    const o: IOptions = { hosts: opts.endpoints, dialTimeout: 5000, grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 } };
    if (opts.auth) o.auth = opts.auth;
    this.client = new Etcd3(o);
    this.root = opts.root ?? '';
  }

  /**
   * Parses `etcd://host:port[,host:port]/root?user=u&password=p`. `socket=/path` reaches etcd
   * through a unix socket instead of host:port (a tenant control plane's, relayed by the
   * provider); `password-file=/path` reads the password from a file, keeping it out of argv.
   */
  static fromUrl(url: string): EtcdBackend {
    const u = new URL(url);
    const socket = u.searchParams.get('socket');
    const endpoints = socket ? [`unix:${socket}`] : u.host.split(',').map((h) => `http://${h}`);
    const user = u.searchParams.get('user') ?? (u.username || undefined);
    const passwordFile = u.searchParams.get('password-file');
    const password = passwordFile ? readFileSync(passwordFile, 'utf8').trim() : (u.searchParams.get('password') ?? (u.password || undefined));
    return new EtcdBackend({
      endpoints,
      root: u.pathname === '/' ? '' : u.pathname.replace(/\/$/, ''),
      auth: user ? { username: decodeURIComponent(user), password: decodeURIComponent(password ?? '') } : undefined,
    });
  }

  private k(key: string): Buffer {
    return Buffer.from(this.root + key);
  }

  private kv(raw: RPC.IKeyValue): KeyValue {
    return {
      key: raw.key.toString().slice(this.root.length),
      value: raw.value,
      createRevision: Number(raw.create_revision),
      modRevision: Number(raw.mod_revision),
    };
  }

  async currentRevision(): Promise<number> {
    const res = await this.call(() => this.client.kv.range({ key: this.k('/'), count_only: true }));
    return Number(res.header.revision);
  }

  async get(key: string, revision?: number): Promise<KeyValue | null> {
    const res = await this.call(() => this.client.kv.range({ key: this.k(key), revision: revision || 0 }));
    return res.kvs.length ? this.kv(res.kvs[0]) : null;
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListResult> {
    const start = opts.startKey && opts.startKey > prefix ? opts.startKey : prefix;
    const limit = opts.limit && opts.limit > 0 ? opts.limit : 0;
    const res = await this.call(() =>
      this.client.kv.range({ key: this.k(start), range_end: this.k(prefixEnd(prefix)), revision: opts.revision || 0, limit }),
    );
    return { items: res.kvs.map((r) => this.kv(r)), revision: Number(res.header.revision), more: res.more };
  }

  async count(prefix: string): Promise<number> {
    const res = await this.call(() => this.client.kv.range({ key: this.k(prefix), range_end: this.k(prefixEnd(prefix)), count_only: true }));
    return Number(res.count);
  }

  async create(key: string, value: Uint8Array): Promise<KeyValue> {
    const res = await this.call(() =>
      this.client.kv.txn({
        compare: [{ key: this.k(key), target: 'Mod', result: 'Equal', mod_revision: 0 }],
        success: [{ request_put: { key: this.k(key), value: Buffer.from(value) } }],
        failure: [],
      }),
    );
    if (!res.succeeded) throw new KubicleError('AlreadyExists', `key ${key} already exists`);
    const rev = Number(res.header.revision);
    return { key, value, createRevision: rev, modRevision: rev };
  }

  async update(key: string, value: Uint8Array, expectedRevision: number): Promise<KeyValue> {
    const res = await this.call(() =>
      this.client.kv.txn({
        compare: [{ key: this.k(key), target: 'Mod', result: 'Equal', mod_revision: expectedRevision }],
        success: [{ request_put: { key: this.k(key), value: Buffer.from(value), prev_kv: true } }],
        failure: [{ request_range: { key: this.k(key) } }],
      }),
    );
    if (!res.succeeded) {
      const current = res.responses[0]?.response_range?.kvs ?? [];
      if (!current.length) throw new KubicleError('NotFound', `key ${key} not found`);
      throw new KubicleError('Conflict', `key ${key} is at revision ${current[0].mod_revision}, not ${expectedRevision}`);
    }
    const prev = res.responses[0]?.response_put?.prev_kv;
    const rev = Number(res.header.revision);
    return { key, value, createRevision: prev ? Number(prev.create_revision) : rev, modRevision: rev };
  }

  async delete(key: string, expectedRevision?: number): Promise<KeyValue> {
    if (expectedRevision === undefined) {
      const res = await this.call(() => this.client.kv.deleteRange({ key: this.k(key), prev_kv: true }));
      if (!res.prev_kvs.length) throw new KubicleError('NotFound', `key ${key} not found`);
      return { ...this.kv(res.prev_kvs[0]), modRevision: Number(res.header.revision) };
    }
    const res = await this.call(() =>
      this.client.kv.txn({
        compare: [{ key: this.k(key), target: 'Mod', result: 'Equal', mod_revision: expectedRevision }],
        success: [{ request_delete_range: { key: this.k(key), prev_kv: true } }],
        failure: [{ request_range: { key: this.k(key) } }],
      }),
    );
    if (!res.succeeded) {
      const current = res.responses[0]?.response_range?.kvs ?? [];
      if (!current.length) throw new KubicleError('NotFound', `key ${key} not found`);
      throw new KubicleError('Conflict', `key ${key} is at revision ${current[0].mod_revision}, not ${expectedRevision}`);
    }
    const prev = res.responses[0]?.response_delete_range?.prev_kvs?.[0];
    if (!prev) throw new KubicleError('NotFound', `key ${key} not found`);
    return { ...this.kv(prev), modRevision: Number(res.header.revision) };
  }

  async watch(prefix: string, afterRevision: number, listener: WatchListener): Promise<Watch> {
    // etcd acknowledges a watch on a compacted revision before cancelling it; a read at that
    // revision fails at once instead, so callers learn Gone from this promise as the contract says.
    if (afterRevision > 0) await this.call(() => this.client.kv.range({ key: this.k(prefix), count_only: true, revision: afterRevision }));
    const watcher = this.client
      .watch()
      .prefix(this.k(prefix))
      .startRevision(String(afterRevision + 1))
      .withPreviousKV()
      .watcher();
    let ended = false;
    const cancel = () => {
      if (ended) return;
      ended = true;
      watcher.cancel().catch(() => {});
    };
    await new Promise<void>((resolve, reject) => {
      let established = false;
      watcher.on('connected', () => {
        established = true;
        resolve();
      });
      watcher.on('put', (kv: RPC.IKeyValue, prev?: RPC.IKeyValue) => {
        if (!ended) listener.event({ type: 'put', kv: this.kv(kv), prev: prev ? this.kv(prev) : undefined });
      });
      watcher.on('delete', (kv: RPC.IKeyValue, prev?: RPC.IKeyValue) => {
        if (ended) return;
        const p = prev ? this.kv(prev) : { ...this.kv(kv), value: Buffer.alloc(0) };
        listener.event({ type: 'delete', kv: { ...p, modRevision: Number(kv.mod_revision) }, prev: p });
      });
      watcher.on('error', (err: Error) => {
        const e = translate(err);
        if (!established) {
          ended = true;
          reject(e);
        } else if (!ended) {
          ended = true;
          listener.error(e);
        }
      });
    });
    return { cancel };
  }

  async compact(revision: number): Promise<void> {
    try {
      await this.call(() => this.client.kv.compact({ revision, physical: false }));
    } catch (err) {
      // Compacting to an already compacted revision is not an error for us (idempotent).
      if (err instanceof KubicleError && err.code === 'Gone') return;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new KubicleError('Unavailable', 'store closed');
    try {
      return await fn();
    } catch (err) {
      throw translate(err);
    }
  }
}

/** etcd's and gRPC's errors into ours. */
function translate(err: unknown): KubicleError {
  if (err instanceof KubicleError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  if (/compacted/.test(msg)) return new KubicleError('Gone', msg, { cause: err });
  if (/future revision/.test(msg)) return new KubicleError('TooNew', msg, { cause: err });
  return new KubicleError('Unavailable', `etcd: ${msg}`, { cause: err });
}
