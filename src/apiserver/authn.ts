import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { KubicleError } from '../observe/errors.js';
import { Health } from './health.js';
import { userFromSubject } from './pki.js';

/**
 * Authentication: a client certificate signed by the cluster CA (user = CN, groups = O), a
 * bearer token from the static token table, or a service account token this server signed.
 * Anything else is 401 Unauthorized, but for a GET of the health endpoints: there a request with
 * no credentials is system:anonymous (RBAC lets system:unauthenticated read them), as upstream's
 * anonymous authentication limited to those paths, so that probes and load balancers need no
 * credential of the cluster.
 */
export interface UserInfo {
  name: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

/** Knows some bearer tokens: the user, undefined for a token it does not know, or throws Unauthorized. */
export type TokenAuthenticator = (token: string) => Promise<UserInfo | undefined>;

const anonymous: UserInfo = { name: 'system:anonymous', groups: ['system:unauthenticated'] };

export class Authenticator {
  private readonly tokens = new Map<string, UserInfo>();
  /** The certificate user of each TLS connection, read once per connection rather than per request. */
  private readonly certUsers = new WeakMap<TLSSocket, UserInfo | null>();
  private readonly others: TokenAuthenticator[] = [];

  addToken(token: string, user: UserInfo): void {
    this.tokens.set(token, user);
  }

  /** Another source of bearer tokens, asked after the static table. */
  addTokenAuthenticator(a: TokenAuthenticator): void {
    this.others.push(a);
  }

  /** Parses a static token file: one `token,user,uid,"group1,group2"` per line (upstream's format). */
  loadTokenFile(text: string): void {
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (!t || t.startsWith('#')) continue;
      const m = t.match(/^([^,]+),([^,]+),([^,]*)(?:,"?([^"]*)"?)?$/);
      if (!m) continue;
      this.addToken(m[1], { name: m[2], uid: m[3] || undefined, groups: m[4] ? m[4].split(',').map((g) => g.trim()) : [] });
    }
  }

  /** The user a bearer token stands for, or undefined if no source knows it. */
  async authenticateToken(token: string): Promise<UserInfo | undefined> {
    const user = this.tokens.get(token);
    if (user) return { ...user, groups: [...new Set([...user.groups, 'system:authenticated'])] };
    for (const a of this.others) {
      const u = await a(token);
      if (u) return u;
    }
    return undefined;
  }

  async authenticate(req: IncomingMessage): Promise<UserInfo> {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const user = await this.authenticateToken(auth.slice(7).trim());
      if (user) return user;
      throw new KubicleError('Unauthorized', 'Unauthorized');
    }
    const socket = req.socket as TLSSocket;
    let user = this.certUsers.get(socket);
    if (user === undefined) {
      user = null;
      if (socket.authorized) {
        const peer = socket.getPeerCertificate();
        if (peer?.subject) {
          const u = userFromSubject(peer.subject as { CN?: string; O?: string });
          if (u.name) user = { name: u.name, groups: [...new Set([...u.groups, 'system:authenticated'])] };
        }
      }
      this.certUsers.set(socket, user);
    }
    if (user) return user;
    if (req.method === 'GET' && Health.serves(new URL(req.url ?? '/', 'http://x').pathname)) return anonymous;
    throw new KubicleError('Unauthorized', 'Unauthorized');
  }
}
