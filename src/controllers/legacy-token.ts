import { Informer } from '../client/informer.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * Legacy service-account token controller, as upstream's tokens controller since 1.24: only a
 * Secret that asks for it — type kubernetes.io/service-account-token, annotated with its
 * account's name — gets a token, never one per account unasked. It fills `token` (a non-expiring
 * legacy JWT), `ca.crt` and `namespace`, and pins the account's uid in an annotation. A Secret
 * whose account does not exist, or exists with another uid, is deleted; so are an account's
 * Secrets when the account is deleted. The API server accepts the token only while its Secret
 * still holds it and the account is the same one.
 */
export const tokenSecretType = 'kubernetes.io/service-account-token';
export const accountNameAnnotation = 'kubernetes.io/service-account.name';
export const accountUidAnnotation = 'kubernetes.io/service-account.uid';

/** Signs legacy tokens with the cluster's service-account key. Pure; never throws for a valid account. */
export interface LegacyTokenSigner {
  legacyToken(sa: { namespace: string; name: string; uid: string }, secretName: string): string;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export class LegacyTokenController {
  /** Keys: "secret|<ns>/<name>" and "sa|<ns>/<name>". */
  private readonly queue = new WorkQueue();
  private readonly secrets: Informer;
  private readonly accounts: Informer;

  constructor(
    private readonly client: KubeClient,
    private readonly signer: LegacyTokenSigner,
    private readonly caPem: string,
    private readonly log: Logger,
  ) {
    this.secrets = new Informer(client, `/api/v1/secrets?fieldSelector=type%3D${encodeURIComponent(tokenSecretType)}`, log);
    this.accounts = new Informer(client, '/api/v1/serviceaccounts', log);
    const secret = (s: Obj) => this.queue.add(`secret|${s.metadata.namespace}/${s.metadata.name}`);
    this.secrets.on({ add: secret, update: (_, s) => secret(s) });
    this.accounts.on({
      // Its token Secrets go with it.
      delete: (sa) => this.queue.add(`sa|${sa.metadata.namespace}/${sa.metadata.name}|${sa.metadata.uid}`),
    });
  }

  private async sync(key: string): Promise<void> {
    const [what, ref, uid] = key.split('|');
    if (what === 'sa') return this.accountGone(ref, uid);
    const secret = this.secrets.get(ref);
    if (!secret || secret.metadata.deletionTimestamp) return;
    const ns: string = secret.metadata.namespace;
    const annotations = secret.metadata.annotations ?? {};
    const saName: string = annotations[accountNameAnnotation] ?? '';
    const sa = await this.account(ns, saName);
    if (!sa || (annotations[accountUidAnnotation] && annotations[accountUidAnnotation] !== sa.metadata.uid)) {
      this.log.info('deleting token secret of a missing service account', { secret: ref, serviceAccount: saName });
      return this.deleteSecret(secret);
    }
    const data = secret.data ?? {};
    const want = { 'ca.crt': b64(this.caPem), namespace: b64(ns) };
    const needs = !data.token || data['ca.crt'] !== want['ca.crt'] || data.namespace !== want.namespace || annotations[accountUidAnnotation] !== sa.metadata.uid;
    if (!needs) return;
    const token = data.token || b64(this.signer.legacyToken({ namespace: ns, name: saName, uid: sa.metadata.uid }, secret.metadata.name));
    try {
      await this.client.update(resourcePath({ version: 'v1', plural: 'secrets', namespace: ns, name: secret.metadata.name }), {
        ...secret,
        metadata: { ...secret.metadata, annotations: { ...annotations, [accountNameAnnotation]: saName, [accountUidAnnotation]: sa.metadata.uid } },
        data: { ...data, ...want, token },
      });
      this.log.info('populated legacy token secret', { secret: ref, serviceAccount: saName });
    } catch (err) {
      // Changed meanwhile (the informer brings the new version back here) or gone.
      if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
    }
  }

  /** The live account (the cache may lag a creation), or undefined when there is none. */
  private async account(ns: string, name: string): Promise<Obj | undefined> {
    if (!name) return undefined;
    const cached = this.accounts.get(`${ns}/${name}`);
    if (cached) return cached;
    try {
      return await this.client.get(resourcePath({ version: 'v1', plural: 'serviceaccounts', namespace: ns, name }));
    } catch (err) {
      if (isCode(err, 'NotFound')) return undefined;
      throw err;
    }
  }

  private async accountGone(ref: string, uid: string): Promise<void> {
    const [ns, name] = ref.split('/');
    for (const secret of this.secrets.listNamespace(ns)) {
      const a = secret.metadata.annotations ?? {};
      if (a[accountNameAnnotation] === name && (!a[accountUidAnnotation] || a[accountUidAnnotation] === uid)) await this.deleteSecret(secret);
    }
  }

  private async deleteSecret(secret: Obj): Promise<void> {
    const path = resourcePath({ version: 'v1', plural: 'secrets', namespace: secret.metadata.namespace, name: secret.metadata.name });
    await this.client.delete(path, { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: secret.metadata.uid } }).catch((err) => {
      if (!isCode(err, 'NotFound') && !isCode(err, 'Conflict')) throw err;
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = [this.secrets.run(signal), this.accounts.run(signal)];
    await Promise.race([Promise.all([this.secrets.synced, this.accounts.synced]), Promise.all(informers)]);
    await Promise.all([...informers, this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('token secret sync failed', { key, err }))]);
  }
}
