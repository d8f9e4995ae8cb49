import path from 'node:path';
import type { Backend } from '../storage/backend.js';

/**
 * Picks the Backend from the --store flag. Each backend's module loads only when chosen: etcd's
 * gRPC client alone costs a tenant control plane on SQLite ~0.1 s of start-up and ~20 MiB.
 */
export async function openStore(store: string, dataDir: string): Promise<Backend> {
  if (store === 'sqlite' || store.startsWith('sqlite:')) {
    const { SqliteBackend } = await import('../storage/sqlite/sqlite-backend.js');
    return new SqliteBackend(store === 'sqlite' ? path.join(dataDir, 'store.db') : store.slice('sqlite:'.length));
  }
  if (store.startsWith('etcd://')) {
    const { EtcdBackend } = await import('../storage/etcd/etcd-backend.js');
    return EtcdBackend.fromUrl(store);
  }
  throw new Error(`unknown --store ${JSON.stringify(store)}: use "sqlite", sqlite:/path/file.db or etcd://host:port[/prefix]`);
}
