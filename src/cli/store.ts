import path from 'node:path';
import type { Backend } from '../storage/backend.js';
import { EtcdBackend } from '../storage/etcd/etcd-backend.js';
import { SqliteBackend } from '../storage/sqlite/sqlite-backend.js';

/** Picks the Backend from the --store flag. */
export function openStore(store: string, dataDir: string): Backend {
  if (store === 'sqlite') return new SqliteBackend(path.join(dataDir, 'store.db'));
  if (store.startsWith('sqlite:')) return new SqliteBackend(store.slice('sqlite:'.length));
  if (store.startsWith('etcd://')) return EtcdBackend.fromUrl(store);
  throw new Error(`unknown --store ${JSON.stringify(store)}: use "sqlite", sqlite:/path/file.db or etcd://host:port[/prefix]`);
}
