import { randomInt } from 'node:crypto';
import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { isCode, KubicleError } from '../../observe/errors.js';
import type { Admission, ObjectStore } from '../object-store.js';

/**
 * ServiceAccount, as upstream's admission plugin of that name: a new pod runs as its
 * serviceAccountName (default "default"), which must exist; unless automounting is turned off
 * (on the pod or its account) it gets the kube-api-access projected volume — a bound token
 * the kubelet requests, the cluster CA from the kube-root-ca.crt ConfigMap, and the namespace —
 * mounted read-only in every container at the path client libraries read; and the account's
 * imagePullSecrets if the pod names none. Mirror pods are left alone.
 */
// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

export const tokenMountPath = '/var/run/secrets/kubernetes.io/serviceaccount';
export const rootCaConfigMap = 'kube-root-ca.crt';
/** Upstream's bound-token lifetime for the volume: an hour and seven seconds, so kubelets spot legacy-length tokens. */
const tokenSeconds = 3607;
/** A namespace's default account is created by a controller just after the namespace; a pod may come first. */
const defaultAccountWaitMs = 3000;
const suffixChars = 'bcdfghjklmnpqrstvwxz2456789';

export class ServiceAccountAdmission implements Admission {
  private readonly pods: ResourceType;
  private readonly accounts: ResourceType;

  constructor(
    registry: Registry,
    private readonly store: () => ObjectStore,
  ) {
    this.pods = registry.mustLookup('', 'v1', 'pods');
    this.accounts = registry.mustLookup('', 'v1', 'serviceaccounts');
  }

  async admitCreate(rt: ResourceType, pod: KubeObject): Promise<void> {
    if (rt !== this.pods || pod.metadata.annotations?.['kubernetes.io/config.mirror'] !== undefined) return;
    const spec = pod.spec as J;
    const name: string = spec.serviceAccountName || spec.serviceAccount || 'default';
    spec.serviceAccountName = name;
    spec.serviceAccount = name;
    const ns = pod.metadata.namespace as string;
    const account = await this.account(ns, name);
    if (!account) {
      throw new KubicleError('Forbidden', `pods "${pod.metadata.name}" is forbidden: error looking up service account ${ns}/${name}: serviceaccount "${name}" not found`);
    }
    if (!spec.imagePullSecrets?.length && account.imagePullSecrets?.length) spec.imagePullSecrets = structuredClone(account.imagePullSecrets);
    if ((spec.automountServiceAccountToken ?? account.automountServiceAccountToken) === false) return;
    const containers: J[] = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
    if (containers.some((c) => (c.volumeMounts ?? []).some((m: J) => m.mountPath === tokenMountPath))) return;
    const volume = `kube-api-access-${Array.from({ length: 5 }, () => suffixChars[randomInt(suffixChars.length)]).join('')}`;
    spec.volumes = [
      ...(spec.volumes ?? []),
      {
        name: volume,
        projected: {
          defaultMode: 0o644,
          sources: [
            { serviceAccountToken: { expirationSeconds: tokenSeconds, path: 'token' } },
            { configMap: { name: rootCaConfigMap, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            { downwardAPI: { items: [{ fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' }, path: 'namespace' }] } },
          ],
        },
      },
    ];
    for (const c of containers) c.volumeMounts = [...(c.volumeMounts ?? []), { name: volume, readOnly: true, mountPath: tokenMountPath }];
  }

  async admitDelete(): Promise<void> {}

  private async account(ns: string, name: string): Promise<KubeObject | undefined> {
    const until = Date.now() + (name === 'default' ? defaultAccountWaitMs : 0);
    for (;;) {
      try {
        return await this.store().get(this.accounts, ns, name);
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
      }
      if (Date.now() >= until) return undefined;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
