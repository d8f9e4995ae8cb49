import { existsSync } from 'node:fs';
import { chown, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Obj } from '../client/kube-client.js';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { controlPlaneEtcdStore, controlPlaneUid, storeSocketName } from './control-plane-sandbox.js';
import { StoreRelay } from './store-relay.js';

/**
 * The etcd that control planes of `spec.store: etcd` share, each under a prefix of its own behind
 * its own etcd user and role (storage's EtcdTenancy has this shape). `grant` is idempotent and
 * makes a new password each time; `revoke` deletes the cluster's keys, user and role, idempotently.
 */
export interface ClusterStores {
  readonly address: { host: string; port: number };
  /** Where store `id`'s keys are and whose user reaches them; grants nothing. */
  names(id: string): { root: string; user: string };
  grant(id: string): Promise<{ root: string; user: string; password: string }>;
  revoke(id: string): Promise<void>;
}

/**
 * Each cluster's way to its store, for the cluster controller. A SQLite store is a file in the
 * control plane's data volume and needs nothing here. An etcd store is reached through a relay
 * socket the provider opens in the cluster's run directory, as the cluster's own etcd user, whose
 * password lies in the first replica's data volume (further replicas copy it from there).
 */
export class ControlPlaneStores {
  private readonly relay?: StoreRelay;

  constructor(
    private readonly stores: ClusterStores | undefined,
    log: Logger,
  ) {
    if (stores) this.relay = new StoreRelay(stores.address, log);
  }

  /** Opens an etcd cluster's relay socket in `runDir` (idempotent); Invalid when this provider has no etcd. */
  async open(c: Obj, runDir: string): Promise<void> {
    if (c.spec.store !== 'etcd') return;
    if (!this.relay) throw new KubicleError('Invalid', 'this provider has no etcd for control planes: start it with --cluster-etcd');
    await this.relay.open(c.metadata.uid, path.join(runDir, storeSocketName));
  }

  /**
   * The control plane's --store (undefined for SQLite). With `rotate`, or on a first start, the
   * cluster's etcd user gets a new password, written into `dataDir` (the first replica's).
   */
  async flag(c: Obj, dataDir: string, rotate: boolean): Promise<string | undefined> {
    if (c.spec.store !== 'etcd' || !this.stores) return undefined;
    const file = path.join(dataDir, 'pki', 'etcd.password');
    if (rotate || !existsSync(file)) {
      const grant = await this.stores.grant(c.metadata.uid);
      await writeFile(file, grant.password, { mode: 0o600 });
      await chown(file, controlPlaneUid, controlPlaneUid);
    }
    return controlPlaneEtcdStore(this.stores.names(c.metadata.uid));
  }

  /** Closes the cluster's relay (stopped or deleted): its control planes lose their store. */
  close(c: Obj): Promise<void> {
    return this.relay?.close(c.metadata.uid) ?? Promise.resolve();
  }

  /** Deletes an etcd cluster's keys, user and role (the cluster is deleted). */
  async revoke(c: Obj): Promise<void> {
    if (c.spec.store === 'etcd' && this.stores) await this.stores.revoke(c.metadata.uid);
  }

  async closeAll(): Promise<void> {
    await this.relay?.closeAll();
  }
}
