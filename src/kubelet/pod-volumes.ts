import { bytes } from '../api/quantity.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { FileSpec, VolumeSpec } from '../sandbox/api/types.js';

/**
 * A pod's volumes as Sandbox API volumes: emptyDir → dir (tmpfs for medium Memory), configMap,
 * secret, downwardAPI and projected → files (their content read now from the API), hostPath and
 * persistentVolumeClaim (bound to a hostPath or local PersistentVolume) → host. A missing configMap or secret that is not optional is CreateContainerConfigError upstream;
 * here it throws Invalid with upstream's wording so the pod shows it.
 */
export async function sandboxVolumes(client: KubeClient, pod: Obj): Promise<VolumeSpec[]> {
  const out: VolumeSpec[] = [];
  for (const v of pod.spec.volumes ?? []) {
    if (v.emptyDir) {
      out.push({ name: v.name, type: 'dir', medium: v.emptyDir.medium === 'Memory' ? 'memory' : 'disk', sizeLimitBytes: v.emptyDir.sizeLimit ? bytes(v.emptyDir.sizeLimit) : undefined });
    } else if (v.hostPath) {
      out.push({ name: v.name, type: 'host', path: v.hostPath.path, create: v.hostPath.type === 'DirectoryOrCreate' ? 'directory' : 'none' });
    } else if (v.configMap || v.secret || v.downwardAPI || v.projected) {
      out.push({ name: v.name, type: 'files', files: await volumeFiles(client, pod, v) });
    } else if (v.persistentVolumeClaim) {
      out.push({ name: v.name, type: 'host', ...(await claimedPath(client, pod.metadata.namespace, v.persistentVolumeClaim.claimName)) });
    } else {
      throw new KubicleError('Unsupported', `volume ${v.name}: this volume type is not supported`);
    }
  }
  return out;
}

/** Where a claim's volume lives on this host: its bound PersistentVolume's hostPath or local path. */
async function claimedPath(client: KubeClient, ns: string, claimName: string): Promise<{ path: string; create: 'directory' | 'none' }> {
  const pvc = await client.get(resourcePath({ version: 'v1', plural: 'persistentvolumeclaims', namespace: ns, name: claimName })).catch((err) => {
    if (isCode(err, 'NotFound')) throw new KubicleError('Invalid', `persistentvolumeclaim "${claimName}" not found`);
    throw err;
  });
  if (pvc.status?.phase !== 'Bound' || !pvc.spec?.volumeName) throw new KubicleError('Invalid', `persistentvolumeclaim "${claimName}" is not bound`);
  const pv = await client.get(resourcePath({ version: 'v1', plural: 'persistentvolumes', name: pvc.spec.volumeName }));
  if (pv.spec?.hostPath?.path) return { path: pv.spec.hostPath.path, create: pv.spec.hostPath.type === 'DirectoryOrCreate' ? 'directory' : 'none' };
  if (pv.spec?.local?.path) return { path: pv.spec.local.path, create: 'none' };
  throw new KubicleError('Unsupported', `persistentvolume "${pv.metadata.name}": only hostPath and local volumes can be mounted on this node`);
}

/** The files of a configMap, secret, downwardAPI or projected volume, as they are now. */
export async function volumeFiles(client: KubeClient, pod: Obj, v: Obj): Promise<FileSpec[]> {
  const ns = pod.metadata.namespace;
  const files: FileSpec[] = [];
  const add = (path: string, data: Buffer, mode?: number) => files.push({ path, data: data.toString('base64'), mode });
  const fromSource = async (src: Obj, kind: 'configMap' | 'secret', defaultMode?: number) => {
    const name = kind === 'configMap' ? src.name : (src.secretName ?? src.name);
    let obj: Obj | undefined;
    try {
      obj = await client.get(resourcePath({ version: 'v1', plural: kind === 'configMap' ? 'configmaps' : 'secrets', namespace: ns, name }));
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
      if (src.optional) return;
      throw new KubicleError('Invalid', `${kind} "${name}" not found`);
    }
    const entries = new Map<string, Buffer>();
    for (const [k, val] of Object.entries((obj.data ?? {}) as Record<string, string>)) entries.set(k, kind === 'secret' ? Buffer.from(val, 'base64') : Buffer.from(val));
    if (kind === 'configMap') for (const [k, val] of Object.entries((obj.binaryData ?? {}) as Record<string, string>)) entries.set(k, Buffer.from(val, 'base64'));
    const mode = src.defaultMode ?? defaultMode ?? 0o644;
    if (src.items?.length) {
      for (const it of src.items) {
        const data = entries.get(it.key);
        if (!data) {
          if (src.optional) continue;
          throw new KubicleError('Invalid', `configmap references non-existent config key: ${it.key}`);
        }
        add(it.path, data, it.mode ?? mode);
      }
    } else for (const [k, data] of entries) add(k, data, mode);
  };
  const downward = (items: Obj[], defaultMode?: number) => {
    for (const it of items ?? []) {
      const value = it.fieldRef ? fieldValue(pod, it.fieldRef.fieldPath) : it.resourceFieldRef ? resourceValue(pod, it.resourceFieldRef) : '';
      add(it.path, Buffer.from(value), it.mode ?? defaultMode ?? 0o644);
    }
  };
  if (v.configMap) await fromSource(v.configMap, 'configMap');
  if (v.secret) await fromSource(v.secret, 'secret');
  if (v.downwardAPI) downward(v.downwardAPI.items, v.downwardAPI.defaultMode);
  if (v.projected) {
    for (const s of v.projected.sources ?? []) {
      if (s.configMap) await fromSource(s.configMap, 'configMap', v.projected.defaultMode);
      if (s.secret) await fromSource(s.secret, 'secret', v.projected.defaultMode);
      if (s.downwardAPI) downward(s.downwardAPI.items, v.projected.defaultMode);
      if (s.serviceAccountToken) {
        const sa = pod.spec.serviceAccountName ?? 'default';
        const tr = await client.create(resourcePath({ version: 'v1', plural: 'serviceaccounts', namespace: ns, name: sa, subresource: 'token' }), {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { audiences: s.serviceAccountToken.audience ? [s.serviceAccountToken.audience] : [], expirationSeconds: s.serviceAccountToken.expirationSeconds ?? 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid } },
        }).catch(() => undefined);
        if (tr?.status?.token) add(s.serviceAccountToken.path, Buffer.from(tr.status.token), v.projected.defaultMode ?? 0o644);
      }
      if (s.clusterTrustBundle) throw new KubicleError('Unsupported', 'clusterTrustBundle projections are not supported');
    }
  }
  return files;
}

/** A downward API field of the pod (metadata.name, metadata.labels['x'], status.podIP …). */
export function fieldValue(pod: Obj, fieldPath: string): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (m) return pod.metadata[m[1]]?.[m[2]] ?? '';
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata.name;
    case 'metadata.namespace':
      return pod.metadata.namespace;
    case 'metadata.uid':
      return pod.metadata.uid;
    case 'metadata.labels':
    case 'metadata.annotations':
      return Object.entries((pod.metadata[fieldPath.slice(9)] ?? {}) as Record<string, string>)
        .sort()
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join('\n');
    case 'spec.nodeName':
      return pod.spec.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec.serviceAccountName ?? '';
    case 'status.hostIP':
      return pod.status?.hostIP ?? '';
    case 'status.podIP':
      return pod.status?.podIP ?? '';
    case 'status.podIPs':
      return (pod.status?.podIPs ?? []).map((p: Obj) => p.ip).join(',');
    default:
      throw new KubicleError('Invalid', `unsupported fieldPath ${fieldPath}`);
  }
}

/** A container's request or limit in the unit the divisor gives (limits default to the node's capacity upstream; here to the request). */
export function resourceValue(pod: Obj, ref: Obj): string {
  const c = (pod.spec.containers ?? []).find((x: Obj) => x.name === ref.containerName) ?? pod.spec.containers?.[0];
  const [kind, res] = String(ref.resource).split('.');
  const q = c?.resources?.[kind]?.[res] ?? c?.resources?.requests?.[res];
  if (q === undefined) return '0';
  const divisor = ref.divisor ? (res === 'cpu' ? Number.parseFloat(ref.divisor) : bytes(ref.divisor)) : 1;
  if (res === 'cpu') {
    const cores = String(q).endsWith('m') ? Number.parseFloat(q) / 1000 : Number.parseFloat(q);
    const d = String(ref.divisor ?? '1').endsWith('m') ? Number.parseFloat(ref.divisor) / 1000 : divisor;
    return String(Math.ceil(cores / d));
  }
  return String(Math.ceil(bytes(q) / divisor));
}
