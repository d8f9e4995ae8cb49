import { randomUUID } from 'node:crypto';
import { FieldErrors } from '../api/field-errors.js';
import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import type { ResourceType } from '../api/resource-type.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { UserInfo } from './authn.js';
import type { ObjectStore } from './object-store.js';
import { legacyIssuer, TokenSigner } from './token-signer.js';

/**
 * Service account tokens: JWTs signed RS256 with the cluster's own key, in upstream's two forms.
 * A bound token (TokenRequest) names its audiences, expires, and may be bound to a Pod or Secret:
 * it is refused once its service account, or the object it is bound to, is gone or replaced. A
 * legacy token lives in a Secret of type kubernetes.io/service-account-token and holds only while
 * that Secret holds it. Either way the user is `system:serviceaccount:<ns>:<name>` in the groups
 * system:serviceaccounts and system:serviceaccounts:<ns>.
 */
export const defaultIssuer = 'https://kubernetes.default.svc.cluster.local';
/** Clock skew allowed on exp and nbf, as upstream's validator allows. */
const leewaySeconds = 60;

export interface TokenClaims {
  iss: string;
  sub: string;
  aud?: string[];
  exp?: number;
  iat?: number;
  nbf?: number;
  jti?: string;
  'kubernetes.io'?: {
    namespace: string;
    serviceaccount: { name: string; uid: string };
    pod?: { name: string; uid: string };
    secret?: { name: string; uid: string };
  };
  'kubernetes.io/serviceaccount/namespace'?: string;
  'kubernetes.io/serviceaccount/secret.name'?: string;
  'kubernetes.io/serviceaccount/service-account.name'?: string;
  'kubernetes.io/serviceaccount/service-account.uid'?: string;
}

export interface BoundObject {
  kind: 'Pod' | 'Secret';
  name: string;
  uid: string;
}

export class ServiceAccountTokens {
  private readonly signer: TokenSigner;
  private readonly serviceAccounts: ResourceType;
  private readonly pods: ResourceType;
  private readonly secrets: ResourceType;

  constructor(
    keyPem: string,
    registry: Registry,
    private readonly store: () => ObjectStore,
    readonly issuer = defaultIssuer,
  ) {
    this.signer = new TokenSigner(keyPem);
    this.serviceAccounts = registry.mustLookup('', 'v1', 'serviceaccounts');
    this.pods = registry.mustLookup('', 'v1', 'pods');
    this.secrets = registry.mustLookup('', 'v1', 'secrets');
  }

  /** The audiences the API server itself accepts: a token for anything else is not for it. */
  get apiAudiences(): string[] {
    return [this.issuer];
  }

  /** A bound token for `sa`, valid for `seconds` from now. */
  issue(sa: KubeObject, audiences: string[], seconds: number, bound?: BoundObject): { token: string; expirationTimestamp: string } {
    const now = Math.floor(Date.now() / 1000);
    const ns = sa.metadata.namespace as string;
    const claims: TokenClaims = {
      iss: this.issuer,
      sub: `system:serviceaccount:${ns}:${sa.metadata.name}`,
      aud: audiences.length ? audiences : this.apiAudiences,
      exp: now + seconds,
      iat: now,
      nbf: now,
      jti: randomUUID(),
      'kubernetes.io': {
        namespace: ns,
        serviceaccount: { name: sa.metadata.name as string, uid: sa.metadata.uid as string },
        ...(bound?.kind === 'Pod' ? { pod: { name: bound.name, uid: bound.uid } } : {}),
        ...(bound?.kind === 'Secret' ? { secret: { name: bound.name, uid: bound.uid } } : {}),
      },
    };
    return { token: this.signer.sign(claims), expirationTimestamp: new Date((now + seconds) * 1000).toISOString().replace(/\.\d+Z$/, 'Z') };
  }

  /**
   * The TokenRequest subresource (`kubectl create token`): a bound token for the service account
   * `ns/name`, for the audiences asked (default: this server), 10 minutes to 2^32 seconds (default
   * an hour), bound to a Pod or Secret that must exist (and have the uid given, if one is).
   */
  async request(ns: string, name: string, body: KubeObject): Promise<KubeObject> {
    if (body?.kind !== undefined && body.kind !== 'TokenRequest') throw new KubicleError('BadRequest', `the object provided is unrecognized (must be of type TokenRequest): ${String(body.kind)}`);
    const sa = await this.store().get(this.serviceAccounts, ns, name);
    const spec = body?.spec ?? {};
    const errs = new FieldErrors();
    const seconds = spec.expirationSeconds ?? 3600;
    if (!Number.isInteger(seconds) || seconds < 600) errs.invalid('spec.expirationSeconds', seconds, 'may not specify a duration less than 10 minutes');
    else if (seconds > 2 ** 32) errs.invalid('spec.expirationSeconds', seconds, 'may not specify a duration larger than 2^32 seconds');
    const audiences = spec.audiences ?? [];
    if (!Array.isArray(audiences) || !audiences.every((a: unknown) => typeof a === 'string' && a)) errs.invalid('spec.audiences', audiences, 'must be a list of non-empty strings');
    const ref = spec.boundObjectRef;
    let bound: BoundObject | undefined;
    if (ref) {
      if (ref.kind !== 'Pod' && ref.kind !== 'Secret') errs.notSupported('spec.boundObjectRef.kind', ref.kind ?? '', ['Pod', 'Secret']);
      else if (!ref.name) errs.required('spec.boundObjectRef.name');
      else {
        const obj = await this.find(ref.kind === 'Pod' ? this.pods : this.secrets, ns, ref.name);
        if (!obj) throw new KubicleError('NotFound', `${ref.kind === 'Pod' ? 'pods' : 'secrets'} "${ref.name}" not found`);
        if (ref.uid && ref.uid !== obj.metadata.uid) throw new KubicleError('Conflict', `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`);
        bound = { kind: ref.kind, name: ref.name, uid: obj.metadata.uid as string };
      }
    }
    errs.throwIfAny('TokenRequest.authentication.k8s.io', name);
    const { token, expirationTimestamp } = this.issue(sa, audiences, seconds, bound);
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace: ns, creationTimestamp: null as unknown as string },
      spec: { audiences: audiences.length ? audiences : this.apiAudiences, expirationSeconds: seconds, boundObjectRef: ref ?? null },
      status: { token, expirationTimestamp },
    };
  }

  /**
   * The user a token stands for. Undefined when the token is not one of ours (not a JWT, or
   * another issuer): other authenticators may know it. A token of ours that fails any check is
   * Unauthorized, without saying which check, as upstream.
   */
  async authenticate(token: string, audiences = this.apiAudiences): Promise<(UserInfo & { audiences: string[] }) | undefined> {
    const claims = this.decode(token);
    if (!claims) return undefined;
    const deny = (why: string): never => {
      throw new KubicleError('Unauthorized', 'Unauthorized', { cause: new Error(why) });
    };
    const now = Math.floor(Date.now() / 1000);
    const legacy = claims.iss === legacyIssuer;
    let ns: string;
    let name: string;
    let uid: string;
    const extra: Record<string, string[]> = {};
    let tokenAudiences: string[] = [];
    if (legacy) {
      ns = claims['kubernetes.io/serviceaccount/namespace'] ?? '';
      name = claims['kubernetes.io/serviceaccount/service-account.name'] ?? '';
      uid = claims['kubernetes.io/serviceaccount/service-account.uid'] ?? '';
      const secretName = claims['kubernetes.io/serviceaccount/secret.name'] ?? '';
      const secret = await this.find(this.secrets, ns, secretName);
      if (!secret || Buffer.from(secret.data?.token ?? '', 'base64').toString() !== token) deny('the token secret is gone or holds another token');
      tokenAudiences = audiences;
    } else {
      const k = claims['kubernetes.io'];
      if (!k) return deny('no kubernetes.io claims');
      if (typeof claims.exp !== 'number' || claims.exp + leewaySeconds < now) deny('expired');
      if (typeof claims.nbf === 'number' && claims.nbf - leewaySeconds > now) deny('not yet valid');
      tokenAudiences = (claims.aud ?? []).filter((a) => audiences.includes(a));
      if (!tokenAudiences.length) deny('no audience of this server');
      ns = k.namespace;
      name = k.serviceaccount?.name;
      uid = k.serviceaccount?.uid;
      if (k.pod) {
        const pod = await this.find(this.pods, ns, k.pod.name);
        if (!pod || pod.metadata.uid !== k.pod.uid || pod.metadata.deletionTimestamp) deny('the pod it is bound to is gone');
        extra['authentication.kubernetes.io/pod-name'] = [k.pod.name];
        extra['authentication.kubernetes.io/pod-uid'] = [k.pod.uid];
      }
      if (k.secret) {
        const secret = await this.find(this.secrets, ns, k.secret.name);
        if (!secret || secret.metadata.uid !== k.secret.uid) deny('the secret it is bound to is gone');
      }
      if (claims.jti) extra['authentication.kubernetes.io/credential-id'] = [`JTI=${claims.jti}`];
    }
    const sa = await this.find(this.serviceAccounts, ns, name);
    if (!sa || (uid && sa.metadata.uid !== uid) || sa.metadata.deletionTimestamp) deny('the service account is gone');
    return {
      name: `system:serviceaccount:${ns}:${name}`,
      uid: sa?.metadata.uid,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
      ...(Object.keys(extra).length ? { extra } : {}),
      audiences: tokenAudiences,
    };
  }

  /** The claims of a token this server signed, or undefined for anything else. */
  private decode(token: string): TokenClaims | undefined {
    const claims = this.signer.verify(token) as TokenClaims | undefined;
    if (!claims || typeof claims !== 'object' || (claims.iss !== this.issuer && claims.iss !== legacyIssuer) || typeof claims.sub !== 'string') return undefined;
    if (claims.aud !== undefined && !Array.isArray(claims.aud)) claims.aud = [String(claims.aud)];
    return claims;
  }

  private async find(rt: ResourceType, ns: string, name: string): Promise<KubeObject | undefined> {
    if (!ns || !name) return undefined;
    try {
      return await this.store().get(rt, ns, name);
    } catch (err) {
      if (isCode(err, 'NotFound')) return undefined;
      throw err;
    }
  }
}
