import { bytes, milliCpu } from '../api/quantity.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { ContainerSpec } from '../sandbox/api/types.js';
import { fieldValue, resourceValue } from './pod-volumes.js';

/**
 * A Kubernetes container as a Sandbox API container: environment resolved (value, valueFrom,
 * envFrom; `$(VAR)` expanded in env, command and args as the kubelet does), security context
 * merged from pod and container, requests and limits in millicores and bytes, mounts by volume.
 * A missing configMap or secret key is Invalid with upstream's words (CreateContainerConfigError).
 */
export async function containerSpec(client: KubeClient, pod: Obj, c: Obj): Promise<ContainerSpec> {
  const env = await resolveEnv(client, pod, c);
  const vars = new Map(env.map((e) => [e.name, e.value]));
  const expand = (s: string) => expandVars(s, vars);
  const psc = pod.spec.securityContext ?? {};
  const sc = c.securityContext ?? {};
  const uid = sc.runAsUser ?? psc.runAsUser;
  const gid = sc.runAsGroup ?? psc.runAsGroup;
  const req = c.resources?.requests ?? {};
  const lim = c.resources?.limits ?? {};
  return {
    name: c.name,
    image: c.image,
    command: c.command?.map(expand),
    args: c.args?.map(expand),
    env,
    workingDir: c.workingDir,
    user: uid !== undefined || gid !== undefined || psc.supplementalGroups ? { uid, gid, supplementalGroups: psc.supplementalGroups } : undefined,
    capabilities: sc.capabilities ? { add: sc.capabilities.add, drop: sc.capabilities.drop } : undefined,
    privileged: !!sc.privileged,
    readOnlyRootfs: !!sc.readOnlyRootFilesystem,
    noNewPrivileges: sc.allowPrivilegeEscalation === false,
    resources: {
      cpuRequestMillis: req.cpu !== undefined ? milliCpu(req.cpu) : lim.cpu !== undefined ? milliCpu(lim.cpu) : undefined,
      cpuLimitMillis: lim.cpu !== undefined ? milliCpu(lim.cpu) : undefined,
      memoryLimitBytes: lim.memory !== undefined ? bytes(lim.memory) : undefined,
    },
    mounts: (c.volumeMounts ?? []).map((m: Obj) => ({ volume: m.name, containerPath: m.mountPath, subPath: m.subPath || (m.subPathExpr ? expand(m.subPathExpr) : undefined), readOnly: !!m.readOnly })),
    stdin: !!c.stdin,
    stdinOnce: !!c.stdinOnce,
    tty: !!c.tty,
  };
}

/** `$(NAME)` → its value when defined; `$$(NAME)` → `$(NAME)` literally; anything else unchanged. */
export function expandVars(s: string, vars: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name?: string) => {
    if (m === '$$') return '$';
    return name !== undefined && vars.has(name) ? (vars.get(name) as string) : m;
  });
}

async function resolveEnv(client: KubeClient, pod: Obj, c: Obj): Promise<{ name: string; value: string }[]> {
  const ns = pod.metadata.namespace;
  const cache = new Map<string, Obj | null>();
  const load = async (kind: 'configmaps' | 'secrets', name: string): Promise<Obj | null> => {
    const key = `${kind}/${name}`;
    if (!cache.has(key)) {
      try {
        cache.set(key, await client.get(resourcePath({ version: 'v1', plural: kind, namespace: ns, name })));
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
        cache.set(key, null);
      }
    }
    return cache.get(key) ?? null;
  };
  const out = new Map<string, string>();
  for (const from of c.envFrom ?? []) {
    const kind = from.configMapRef ? 'configmaps' : 'secrets';
    const ref = from.configMapRef ?? from.secretRef;
    const obj = await load(kind, ref.name);
    if (!obj) {
      if (ref.optional) continue;
      throw new KubicleError('Invalid', `${kind === 'configmaps' ? 'configmap' : 'secret'} "${ref.name}" not found`);
    }
    for (const [k, v] of Object.entries((obj.data ?? {}) as Record<string, string>)) out.set(`${from.prefix ?? ''}${k}`, kind === 'secrets' ? Buffer.from(v, 'base64').toString() : v);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined || !e.valueFrom) {
      out.set(e.name, expandVars(e.value ?? '', out));
      continue;
    }
    const vf = e.valueFrom;
    if (vf.fieldRef) out.set(e.name, fieldValue(pod, vf.fieldRef.fieldPath));
    else if (vf.resourceFieldRef) out.set(e.name, resourceValue(pod, { containerName: c.name, ...vf.resourceFieldRef }));
    else {
      const kind = vf.configMapKeyRef ? 'configmaps' : 'secrets';
      const ref = vf.configMapKeyRef ?? vf.secretKeyRef;
      const obj = await load(kind, ref.name);
      const raw = obj?.data?.[ref.key];
      if (raw === undefined) {
        if (ref.optional) continue;
        throw new KubicleError('Invalid', obj ? `couldn't find key ${ref.key} in ${kind === 'configmaps' ? 'ConfigMap' : 'Secret'} ${ns}/${ref.name}` : `${kind === 'configmaps' ? 'configmap' : 'secret'} "${ref.name}" not found`);
      }
      out.set(e.name, kind === 'secrets' ? Buffer.from(raw, 'base64').toString() : raw);
    }
  }
  return [...out].map(([name, value]) => ({ name, value }));
}
