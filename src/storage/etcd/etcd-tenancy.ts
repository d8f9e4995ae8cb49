import { randomBytes } from 'node:crypto';
import { Etcd3, EtcdRoleExistsError, EtcdRoleNotFoundError, EtcdUserExistsError, EtcdUserNotFoundError, Range } from 'etcd3';
import { KubicleError } from '../../observe/errors.js';

/**
 * One etcd shared by many stores, each under a prefix of its own and reachable only with its own
 * user: a role per store grants read-write on its prefix and nothing else, so a store's
 * credentials, even in hostile hands, open no other store (DESIGN §6). Driven with the etcd root
 * user's credentials; auth must be enabled on the etcd for the roles to mean anything.
 */
export interface StoreGrant {
  /** The store's key prefix, ending in "/". */
  root: string;
  user: string;
  password: string;
}

export class EtcdTenancy {
  private readonly client: Etcd3;
  /** Where etcd answers, for callers that relay connections to it. */
  readonly address: { host: string; port: number };
  private readonly base: string;

  /** `url`: etcd://host:port/base?user=root&password=p — each store's prefix is <base>/<id>/. */
  constructor(url: string) {
    const shown = JSON.stringify(url.replace(/password=[^&]*/, 'password=***'));
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new KubicleError('Invalid', `etcd URL ${shown} must be etcd://host:port[/base]?user=root&password=…`);
    }
    const user = u.searchParams.get('user') ?? (u.username || undefined);
    const password = u.searchParams.get('password') ?? (u.password || '');
    if (u.protocol !== 'etcd:' || !u.hostname || !u.port) throw new KubicleError('Invalid', `etcd URL ${shown} must be etcd://host:port[/base]?user=root&password=…`);
    this.address = { host: u.hostname, port: Number(u.port) };
    this.base = u.pathname === '/' ? '/kubicle/stores' : u.pathname.replace(/\/$/, '');
    this.client = new Etcd3({ hosts: [`http://${u.host}`], dialTimeout: 5000, auth: user ? { username: decodeURIComponent(user), password: decodeURIComponent(password) } : undefined });
  }

  /** Where store `id` keeps its keys and whose user reaches them; grants nothing. */
  names(id: string): { root: string; user: string } {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(id)) throw new KubicleError('Invalid', `store id ${JSON.stringify(id)} must be a DNS label`);
    return { root: `${this.base}/${id}/`, user: `kubicle-${id}` };
  }

  /**
   * Gives store `id` (a DNS label) its prefix, role and user, with a new password. Idempotent:
   * an existing user gets the new password, so only the latest grant's holder gets in.
   */
  async grant(id: string): Promise<StoreGrant> {
    const { root, user: name } = this.names(id);
    const password = randomBytes(24).toString('base64url');
    const role = this.client.role(name);
    await role.create().catch((err) => {
      if (!(err instanceof EtcdRoleExistsError)) throw err;
    });
    await role.grant({ permission: 'Readwrite', range: Range.prefix(root) });
    const user = this.client.user(name);
    await user.create(password).catch(async (err) => {
      if (!(err instanceof EtcdUserExistsError)) throw err;
      await user.setPassword(password);
    });
    await user.addRole(role);
    return { root, user: name, password };
  }

  /** Deletes store `id`'s keys, then its user and role. Idempotent. */
  async revoke(id: string): Promise<void> {
    const name = `kubicle-${id}`;
    await this.client.delete().prefix(`${this.base}/${id}/`);
    await this.client.user(name).delete().catch((err) => {
      if (!(err instanceof EtcdUserNotFoundError)) throw err;
    });
    await this.client.role(name).delete().catch((err) => {
      if (!(err instanceof EtcdRoleNotFoundError)) throw err;
    });
  }

  close(): void {
    this.client.close();
  }
}
