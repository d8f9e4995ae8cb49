import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';

/**
 * The cluster's service-account signing key: signs and verifies RS256 JWTs. The API server
 * verifies with it and signs bound tokens; the controller manager signs legacy tokens for
 * Secrets that ask for one, as upstream's controller manager does with the same key file.
 */
export const legacyIssuer = 'kubernetes/serviceaccount';

export interface ServiceAccountRef {
  namespace: string;
  name: string;
  uid: string;
}

export class TokenSigner {
  private readonly key: KeyObject;
  private readonly publicKey: KeyObject;
  /** Upstream's key id: the SHA-256 of the public key's DER, base64url. */
  readonly kid: string;

  constructor(keyPem: string) {
    this.key = createPrivateKey(keyPem);
    this.publicKey = createPublicKey(this.key);
    this.kid = createHash('sha256')
      .update(this.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64url');
  }

  sign(claims: object): string {
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: this.kid })).toString('base64url');
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const signature = sign('sha256', Buffer.from(`${header}.${payload}`), this.key).toString('base64url');
    return `${header}.${payload}.${signature}`;
  }

  /** The payload of a token this key signed, parsed; undefined for anything else (never throws). */
  verify(token: string): unknown {
    const parts = token.split('.');
    if (parts.length !== 3 || token.length > 16 << 10) return undefined;
    try {
      const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
      if (header?.alg !== 'RS256') return undefined;
      if (!verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), this.publicKey, Buffer.from(parts[2], 'base64url'))) return undefined;
      return JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    } catch {
      return undefined;
    }
  }

  /** A legacy token for the Secret `secretName` of `sa`, in upstream's claims: no audience, no expiry. */
  legacyToken(sa: ServiceAccountRef, secretName: string): string {
    return this.sign({
      iss: legacyIssuer,
      sub: `system:serviceaccount:${sa.namespace}:${sa.name}`,
      'kubernetes.io/serviceaccount/namespace': sa.namespace,
      'kubernetes.io/serviceaccount/secret.name': secretName,
      'kubernetes.io/serviceaccount/service-account.name': sa.name,
      'kubernetes.io/serviceaccount/service-account.uid': sa.uid,
    });
  }
}
