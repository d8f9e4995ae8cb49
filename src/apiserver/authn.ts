import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { KubicleError } from '../observe/errors.js';
import { userFromSubject } from './pki.js';

/**
 * Authentication: a client certificate signed by the cluster CA (user = CN, groups = O), or a
 * bearer token from the static token table. Anything else is 401 Unauthorized; there is no
 * anonymous access.
 */
export interface UserInfo {
  name: string;
  uid?: string;
  groups: string[];
}

export class Authenticator {
  private readonly tokens = new Map<string, UserInfo>();
  /** The certificate user of each TLS connection, read once per connection rather than per request. */
  private readonly certUsers = new WeakMap<TLSSocket, UserInfo | null>();

  addToken(token: string, user: UserInfo): void {
    this.tokens.set(token, user);
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

  authenticate(req: IncomingMessage): UserInfo {
    const auth = req.headers.authorization;
    if (auth?.startsWith('Bearer ')) {
      const user = this.tokens.get(auth.slice(7).trim());
      if (user) return { ...user, groups: [...new Set([...user.groups, 'system:authenticated'])] };
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
    throw new KubicleError('Unauthorized', 'Unauthorized');
  }
}
