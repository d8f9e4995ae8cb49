import Database from 'better-sqlite3';
import { KubicleError } from '../../observe/errors.js';
import { type Backend, type KeyValue, type ListOptions, type ListResult, prefixEnd, type Watch, type WatchEvent, type WatchListener } from '../backend.js';

/**
 * SqliteBackend: the embedded default store, one file. An append-only table where each row is
 * one revision (kine's layout): create, update and delete append a row; reads take the newest
 * row per key at or below a revision. better-sqlite3 is synchronous and this process is the
 * only writer. Writes are group-committed: those issued in one turn of the event loop run in
 * order inside one transaction, each with its own checks (one that fails writes nothing and does
 * not disturb the others), and are acknowledged, and watchers told, only after that commit, in
 * commit order. A burst of writes so pays for one commit, not one each.
 *
 * Durability: WAL with synchronous=NORMAL. A committed write survives a crash of this process
 * (kill -9); an OS crash or power loss can lose the last transactions. See docs/adr/0002.
 */
interface Row {
  id: number;
  name: string;
  created: number;
  deleted: number;
  create_revision: number;
  prev_revision: number;
  value: Buffer;
  old_value: Buffer | null;
}

interface Subscriber {
  prefix: string;
  listener: WatchListener;
}

export class SqliteBackend implements Backend {
  private readonly db: Database.Database;
  private readonly subscribers = new Set<Subscriber>();
  private compacted = 0;
  private closed = false;
  private readonly stmt: Record<string, Database.Statement>;
  /** Writes waiting for the next group commit, in the order they were issued. */
  private pending: { fn: () => WatchEvent; resolve: (ev: WatchEvent) => void; reject: (err: unknown) => void }[] = [];
  /** One compiled transaction wrapper, reused for every commit. */
  private readonly txn: Database.Transaction<(fn: () => void) => void>;

  constructor(readonly path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS kv (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        created INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        create_revision INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        value BLOB NOT NULL,
        old_value BLOB
      );
      CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
      CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev ON kv (name, prev_revision);
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
    `);
    this.txn = this.db.transaction((fn: () => void) => fn());
    const c = this.db.prepare(`SELECT v FROM meta WHERE k = 'compacted'`).get() as { v: number } | undefined;
    this.compacted = c?.v ?? 0;
    this.stmt = {
      // AUTOINCREMENT keeps ids monotonic even when compaction deletes the newest rows.
      current: this.db.prepare(`SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'kv'), 0) AS rev`),
      latest: this.db.prepare(`SELECT * FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1`),
      latestAt: this.db.prepare(`SELECT * FROM kv WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1`),
      range: this.db.prepare(`
        SELECT kv.* FROM kv JOIN (
          SELECT MAX(id) AS mid FROM kv WHERE name >= ? AND name < ? AND id <= ? GROUP BY name
        ) m ON kv.id = m.mid WHERE kv.deleted = 0 ORDER BY kv.name LIMIT ?`),
      count: this.db.prepare(`
        SELECT COUNT(*) AS n FROM kv JOIN (
          SELECT MAX(id) AS mid FROM kv WHERE name >= ? AND name < ? GROUP BY name
        ) m ON kv.id = m.mid WHERE kv.deleted = 0`),
      insert: this.db.prepare(`
        INSERT INTO kv (name, created, deleted, create_revision, prev_revision, value, old_value)
        VALUES (@name, @created, @deleted, @create_revision, @prev_revision, @value, @old_value)`),
      after: this.db.prepare(`SELECT * FROM kv WHERE name >= ? AND name < ? AND id > ? ORDER BY id LIMIT 1000`),
      compactRows: this.db.prepare(`
        DELETE FROM kv WHERE id <= @rev AND (
          deleted = 1 OR id < (SELECT MAX(k2.id) FROM kv k2 WHERE k2.name = kv.name AND k2.id <= @rev))`),
      setCompacted: this.db.prepare(`INSERT INTO meta (k, v) VALUES ('compacted', ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`),
    };
  }

  async currentRevision(): Promise<number> {
    return this.rev();
  }

  private rev(): number {
    return (this.stmt.current.get() as { rev: number }).rev;
  }

  private checkRevision(revision: number): void {
    if (revision > 0 && revision < this.compacted) throw new KubicleError('Gone', `required revision ${revision} has been compacted (compacted to ${this.compacted})`);
    if (revision > this.rev()) throw new KubicleError('TooNew', `revision ${revision} is newer than the current revision`);
  }

  async get(key: string, revision?: number): Promise<KeyValue | null> {
    this.ensureOpen();
    let row: Row | undefined;
    if (revision) {
      this.checkRevision(revision);
      row = this.stmt.latestAt.get(key, revision) as Row | undefined;
    } else {
      row = this.stmt.latest.get(key) as Row | undefined;
    }
    return row && !row.deleted ? toKv(row) : null;
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListResult> {
    this.ensureOpen();
    const revision = opts.revision || this.rev();
    if (opts.revision) this.checkRevision(opts.revision);
    const start = opts.startKey && opts.startKey > prefix ? opts.startKey : prefix;
    const limit = opts.limit && opts.limit > 0 ? opts.limit : -1;
    // Ask for one more than the limit to learn whether more remain.
    const rows = this.stmt.range.all(start, prefixEnd(prefix), revision, limit > 0 ? limit + 1 : -1) as Row[];
    const more = limit > 0 && rows.length > limit;
    if (more) rows.length = limit;
    return { items: rows.map(toKv), revision, more };
  }

  async count(prefix: string): Promise<number> {
    this.ensureOpen();
    return (this.stmt.count.get(prefix, prefixEnd(prefix)) as { n: number }).n;
  }

  async create(key: string, value: Uint8Array): Promise<KeyValue> {
    const ev = await this.write(() => {
      const latest = this.stmt.latest.get(key) as Row | undefined;
      if (latest && !latest.deleted) throw new KubicleError('AlreadyExists', `key ${key} already exists`);
      // create_revision 0 on a creating row means "this row's own id" (see createRevisionOf): no second statement.
      const id = Number(
        this.stmt.insert.run({ name: key, created: 1, deleted: 0, create_revision: 0, prev_revision: latest?.id ?? 0, value: Buffer.from(value), old_value: null })
          .lastInsertRowid,
      );
      const kv: KeyValue = { key, value, createRevision: id, modRevision: id };
      return { type: 'put', kv } satisfies WatchEvent;
    });
    return ev.kv;
  }

  async update(key: string, value: Uint8Array, expectedRevision: number): Promise<KeyValue> {
    const ev = await this.write(() => {
      const latest = this.stmt.latest.get(key) as Row | undefined;
      if (!latest || latest.deleted) throw new KubicleError('NotFound', `key ${key} not found`);
      if (latest.id !== expectedRevision) throw new KubicleError('Conflict', `key ${key} is at revision ${latest.id}, not ${expectedRevision}`);
      const id = Number(
        this.stmt.insert.run({
          name: key,
          created: 0,
          deleted: 0,
          create_revision: createRevisionOf(latest),
          prev_revision: latest.id,
          value: Buffer.from(value),
          old_value: latest.value,
        }).lastInsertRowid,
      );
      return { type: 'put', kv: { key, value, createRevision: createRevisionOf(latest), modRevision: id }, prev: toKv(latest) } satisfies WatchEvent;
    });
    return ev.kv;
  }

  async delete(key: string, expectedRevision?: number): Promise<KeyValue> {
    const ev = await this.write(() => {
      const latest = this.stmt.latest.get(key) as Row | undefined;
      if (!latest || latest.deleted) throw new KubicleError('NotFound', `key ${key} not found`);
      if (expectedRevision !== undefined && latest.id !== expectedRevision) {
        throw new KubicleError('Conflict', `key ${key} is at revision ${latest.id}, not ${expectedRevision}`);
      }
      const id = Number(
        this.stmt.insert.run({
          name: key,
          created: 0,
          deleted: 1,
          create_revision: createRevisionOf(latest),
          prev_revision: latest.id,
          value: latest.value,
          old_value: latest.value,
        }).lastInsertRowid,
      );
      const prev = toKv(latest);
      return { type: 'delete', kv: { ...prev, modRevision: id }, prev } satisfies WatchEvent;
    });
    return ev.kv;
  }

  /** Queues a write for the next group commit; resolves its event once committed. */
  private write(fn: () => WatchEvent): Promise<WatchEvent> {
    this.ensureOpen();
    return new Promise((resolve, reject) => {
      if (!this.pending.length) setImmediate(() => this.commit());
      this.pending.push({ fn, resolve, reject });
    });
  }

  /**
   * Commits every queued write in one transaction. A write refused by its own checks (a
   * KubicleError thrown before it inserts) fails alone; any other error (the disk, SQLite) rolls
   * the whole group back and fails every write in it, so nothing is half-written.
   */
  private commit(): void {
    const group = this.pending;
    this.pending = [];
    if (!group.length) return;
    const outcomes: ({ ok: true; ev: WatchEvent } | { ok: false; err: unknown })[] = [];
    try {
      this.txn.immediate(() => {
        for (const w of group) {
          try {
            outcomes.push({ ok: true, ev: w.fn() });
          } catch (err) {
            if (!(err instanceof KubicleError)) throw err;
            outcomes.push({ ok: false, err });
          }
        }
      });
    } catch (err) {
      for (const w of group) w.reject(err);
      return;
    }
    for (let i = 0; i < group.length; i++) {
      const o = outcomes[i];
      if (!o.ok) {
        group[i].reject(o.err);
        continue;
      }
      for (const s of this.subscribers) if (o.ev.kv.key.startsWith(s.prefix)) s.listener.event(o.ev);
      group[i].resolve(o.ev);
    }
  }

  async watch(prefix: string, afterRevision: number, listener: WatchListener): Promise<Watch> {
    this.ensureOpen();
    if (afterRevision < this.compacted) throw new KubicleError('Gone', `required revision ${afterRevision} has been compacted (compacted to ${this.compacted})`);
    // Replay history synchronously, then subscribe in the same tick: since every write runs on
    // this thread, no commit can fall between the replay and the subscription.
    const end = prefixEnd(prefix);
    let after = afterRevision;
    for (;;) {
      const rows = this.stmt.after.all(prefix, end, after) as Row[];
      for (const row of rows) listener.event(rowEvent(row));
      if (rows.length < 1000) break;
      after = rows[rows.length - 1].id;
    }
    const sub: Subscriber = { prefix, listener };
    this.subscribers.add(sub);
    return { cancel: () => this.subscribers.delete(sub) };
  }

  async compact(revision: number): Promise<void> {
    this.ensureOpen();
    if (revision <= this.compacted) return;
    if (revision > this.rev()) throw new KubicleError('TooNew', `cannot compact to ${revision}: newer than the current revision`);
    this.db.transaction(() => {
      this.stmt.compactRows.run({ rev: revision });
      this.stmt.setCompacted.run(revision);
    })();
    this.compacted = revision;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.commit(); // writes already issued are not lost to a shutdown
    this.closed = true;
    for (const s of this.subscribers) s.listener.error(new KubicleError('Unavailable', 'store closed'));
    this.subscribers.clear();
    this.db.close();
  }

  private ensureOpen(): void {
    if (this.closed) throw new KubicleError('Unavailable', 'store closed');
  }
}

function createRevisionOf(row: Row): number {
  return row.create_revision || row.id;
}

function toKv(row: Row): KeyValue {
  return { key: row.name, value: row.value, createRevision: createRevisionOf(row), modRevision: row.id };
}

function rowEvent(row: Row): WatchEvent {
  const kv = toKv(row);
  if (row.deleted) return { type: 'delete', kv, prev: { ...kv, modRevision: row.prev_revision } };
  if (row.created) return { type: 'put', kv };
  return { type: 'put', kv, prev: { key: row.name, value: row.old_value ?? Buffer.alloc(0), createRevision: kv.createRevision, modRevision: row.prev_revision } };
}
