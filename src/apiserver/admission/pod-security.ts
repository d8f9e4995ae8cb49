import { FieldErrors } from '../../api/field-errors.js';
import type { KubeObject } from '../../api/object.js';
import type { ResourceType } from '../../api/resource-type.js';
import { KubicleError } from '../../observe/errors.js';
import type { Logger } from '../../observe/log.js';
import type { Admission, WriteOptions } from '../object-store.js';
import type { CachedObjects } from './cached-objects.js';

// biome-ignore lint/suspicious/noExplicitAny: pod specs are untyped JSON
type J = Record<string, any>;
type Level = 'privileged' | 'baseline' | 'restricted';

/**
 * PodSecurity: the Pod Security Standards (latest version) by namespace labels
 * pod-security.kubernetes.io/{enforce,warn,audit}. Enforce refuses pods that break their
 * namespace's level with upstream's 403; warn answers with a Warning header, for pods and for
 * the pod templates of workload kinds (as upstream, templates are only warned about); audit
 * writes a structured log line, as this server keeps no audit log. Unlabelled namespaces are
 * privileged, as upstream's default.
 */
const levels: Level[] = ['privileged', 'baseline', 'restricted'];
const label = (mode: string) => `pod-security.kubernetes.io/${mode}`;

/** Where each workload kind keeps its pod template. */
const templates: Record<string, (o: KubeObject) => J | undefined> = {
  'apps/deployments': (o) => o.spec?.template,
  'apps/replicasets': (o) => o.spec?.template,
  'apps/statefulsets': (o) => o.spec?.template,
  'apps/daemonsets': (o) => o.spec?.template,
  'batch/jobs': (o) => o.spec?.template,
  'batch/cronjobs': (o) => o.spec?.jobTemplate?.spec?.template,
  '/replicationcontrollers': (o) => o.spec?.template,
  '/podtemplates': (o) => o.template,
};

const baselineCapabilities = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);
const safeSysctls = new Set([
  'kernel.shm_rmid_forced',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies',
  'net.ipv4.ping_group_range',
  'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const seLinuxTypes = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);
const restrictedVolumes = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);

const quote = (names: string[]) => names.map((n) => `"${n}"`).join(', ');
const containersWord = (names: string[]) => `${names.length === 1 ? 'container' : 'containers'} ${quote(names)}`;

/** Every check of one level that the pod spec (with its metadata) fails, in upstream's words. */
export function podSecurityViolations(level: Level, meta: J | undefined, spec: J | undefined): string[] {
  if (level === 'privileged' || !spec) return [];
  const out: string[] = [];
  const all: J[] = [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
  const psc: J = spec.securityContext ?? {};
  const failing = (test: (c: J) => boolean) => all.filter(test).map((c) => String(c.name));

  // Baseline.
  const hostProcess = psc.windowsOptions?.hostProcess === true || all.some((c) => c.securityContext?.windowsOptions?.hostProcess === true);
  if (hostProcess) out.push('hostProcess (pod or containers must not set securityContext.windowsOptions.hostProcess=true)');
  const hostNs = ['hostNetwork', 'hostPID', 'hostIPC'].filter((k) => spec[k] === true);
  if (hostNs.length) out.push(`host namespaces (${hostNs.map((k) => `${k}=true`).join(', ')})`);
  const privileged = failing((c) => c.securityContext?.privileged === true);
  if (privileged.length) out.push(`privileged (${containersWord(privileged)} must not set securityContext.privileged=true)`);
  const addedCaps = new Set<string>();
  const capContainers = failing((c) => {
    const bad = ((c.securityContext?.capabilities?.add ?? []) as string[]).filter((cap) => !baselineCapabilities.has(cap));
    for (const cap of bad) addedCaps.add(cap);
    return bad.length > 0;
  });
  if (capContainers.length) out.push(`non-default capabilities (${containersWord(capContainers)} must not include ${quote([...addedCaps])} in securityContext.capabilities.add)`);
  const hostPaths = ((spec.volumes ?? []) as J[]).filter((v) => v.hostPath).map((v) => String(v.name));
  if (hostPaths.length) out.push(`hostPath volumes (${hostPaths.length === 1 ? 'volume' : 'volumes'} ${quote(hostPaths)})`);
  const hostPorts = new Set<number>();
  const hostPortContainers = failing((c) => {
    const ports = ((c.ports ?? []) as J[]).filter((p) => p.hostPort).map((p) => Number(p.hostPort));
    for (const p of ports) hostPorts.add(p);
    return ports.length > 0;
  });
  if (hostPortContainers.length) out.push(`hostPort (${containersWord(hostPortContainers)} ${hostPortContainers.length === 1 ? 'uses' : 'use'} ${hostPorts.size === 1 ? 'hostPort' : 'hostPorts'} ${[...hostPorts].join(', ')})`);
  const appArmor = (p: J | undefined) => p && p.type !== 'RuntimeDefault' && p.type !== 'Localhost';
  const badAnnotations = Object.entries<string>(meta?.annotations ?? {}).filter(([k, v]) => k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v !== 'runtime/default' && !v.startsWith('localhost/'));
  if (appArmor(psc.appArmorProfile) || all.some((c) => appArmor(c.securityContext?.appArmorProfile)) || badAnnotations.length) out.push('forbidden AppArmor profile');
  const seLinux = (o: J | undefined) => o && (!seLinuxTypes.has(o.type ?? '') || o.user || o.role);
  if (seLinux(psc.seLinuxOptions) || all.some((c) => seLinux(c.securityContext?.seLinuxOptions))) out.push('seLinuxOptions (pod or containers must not set forbidden securityContext.seLinuxOptions)');
  const procMount = failing((c) => c.securityContext?.procMount !== undefined && c.securityContext.procMount !== 'Default');
  if (procMount.length) out.push(`procMount (${containersWord(procMount)} must not set securityContext.procMount to "Unmasked")`);
  const unconfined = psc.seccompProfile?.type === 'Unconfined' || all.some((c) => c.securityContext?.seccompProfile?.type === 'Unconfined');
  if (unconfined) out.push('seccompProfile (pod or containers must not set securityContext.seccompProfile.type to "Unconfined")');
  const sysctls = ((psc.sysctls ?? []) as J[]).map((s) => String(s.name)).filter((n) => !safeSysctls.has(n));
  if (sysctls.length) out.push(`forbidden sysctls (${sysctls.join(', ')})`);
  if (level === 'baseline') return out;

  // Restricted.
  const volumes = ((spec.volumes ?? []) as J[]).flatMap((v) => {
    const type = Object.keys(v).find((k) => k !== 'name');
    return type && !restrictedVolumes.has(type) ? [[String(v.name), type]] : [];
  });
  if (volumes.length) {
    out.push(`restricted volume types (${volumes.length === 1 ? 'volume' : 'volumes'} ${quote(volumes.map((v) => v[0]))} ${volumes.length === 1 ? 'uses' : 'use'} restricted volume ${volumes.length === 1 ? 'type' : 'types'} ${quote([...new Set(volumes.map((v) => v[1]))])})`);
  }
  const escalation = failing((c) => c.securityContext?.allowPrivilegeEscalation !== false);
  if (escalation.length) out.push(`allowPrivilegeEscalation != false (${containersWord(escalation)} must set securityContext.allowPrivilegeEscalation=false)`);
  const caps = failing((c) => !((c.securityContext?.capabilities?.drop ?? []) as string[]).includes('ALL'));
  if (caps.length) out.push(`unrestricted capabilities (${containersWord(caps)} must set securityContext.capabilities.drop=["ALL"])`);
  const addsMore = failing((c) => ((c.securityContext?.capabilities?.add ?? []) as string[]).some((cap) => cap !== 'NET_BIND_SERVICE'));
  if (addsMore.length) out.push(`unrestricted capabilities (${containersWord(addsMore)} must not include capabilities other than "NET_BIND_SERVICE" in securityContext.capabilities.add)`);
  const nonRoot = failing((c) => (c.securityContext?.runAsNonRoot ?? psc.runAsNonRoot) !== true);
  if (psc.runAsNonRoot === false || nonRoot.length) out.push(`runAsNonRoot != true (${psc.runAsNonRoot === true ? '' : 'pod or '}${containersWord(nonRoot)} must set securityContext.runAsNonRoot=true)`);
  const root = failing((c) => c.securityContext?.runAsUser === 0);
  if (psc.runAsUser === 0 || root.length) out.push(`runAsUser=0 (${psc.runAsUser === 0 ? 'pod' : ''}${psc.runAsUser === 0 && root.length ? ' and ' : ''}${root.length ? containersWord(root) : ''} must not set runAsUser=0)`);
  const seccompOk = (p: J | undefined) => p?.type === 'RuntimeDefault' || p?.type === 'Localhost';
  const seccomp = failing((c) => !seccompOk(c.securityContext?.seccompProfile ?? psc.seccompProfile));
  if (seccomp.length) out.push(`seccompProfile (${seccompOk(psc.seccompProfile) ? '' : 'pod or '}${containersWord(seccomp)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`);
  return out;
}

interface LevelVersion {
  level: Level;
  /** "latest" or "v1.x", as labelled; the checks are always the latest ones. */
  version: string;
}
type Mode = 'enforce' | 'warn' | 'audit';
type Policy = Record<Mode, LevelVersion> & { errors: FieldErrors };

const show = (lv: LevelVersion) => `${lv.level}:${lv.version}`;

/**
 * The policy a namespace's labels say, as upstream reads them: unlabelled modes are privileged;
 * a level that does not parse enforces restricted (fail closed) but warns and audits nothing
 * (fail open); every label that does not parse is an error, refused when written.
 */
function policyOf(ns: KubeObject | undefined): Policy {
  const labels: Record<string, string> = ns?.metadata.labels ?? {};
  const errors = new FieldErrors();
  const read = (mode: Mode): LevelVersion => {
    const lv: LevelVersion = { level: 'privileged', version: 'latest' };
    const level = labels[label(mode)];
    if (level !== undefined) {
      if (levels.includes(level as Level)) lv.level = level as Level;
      else {
        errors.invalid(`metadata.labels[${label(mode)}]`, level, `must be one of ${levels.join(', ')}`);
        lv.level = mode === 'enforce' ? 'restricted' : 'privileged';
      }
    }
    const version = labels[label(`${mode}-version`)];
    if (version !== undefined) {
      if (version === 'latest' || /^v1\.(0|[1-9][0-9]*)$/.test(version)) lv.version = version;
      else errors.invalid(`metadata.labels[${label(`${mode}-version`)}]`, version, 'must be "latest" or "v1.x"');
    }
    return lv;
  };
  return { enforce: read('enforce'), warn: read('warn'), audit: read('audit'), errors };
}

/** At most this many of a namespace's pods are checked when its enforce level is raised, as upstream. */
const maxPodsChecked = 3000;

export class PodSecurity implements Admission {
  /**
   * `namespaces`: the server's followed Namespaces (their labels say the levels); `listPods`: a
   * namespace's pods, read when its enforce level is raised.
   */
  constructor(
    private readonly namespaces: CachedObjects,
    private readonly listPods: (namespace: string) => Promise<KubeObject[]>,
    private readonly log: Logger,
  ) {}

  admitCreate(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void> {
    if (isNamespace(rt)) {
      policyOf(obj).errors.throwIfAny('Namespace', obj.metadata.name);
      return Promise.resolve();
    }
    return this.admit(rt, obj, opts);
  }

  admitUpdate(rt: ResourceType, obj: KubeObject, old: KubeObject, opts: WriteOptions): Promise<void> {
    if (isNamespace(rt)) return this.relabel(obj, old, opts);
    // Only a change of what the standards look at is judged again (a label change is not).
    const isPod = rt.group === '' && rt.plural === 'pods';
    const template = templates[`${rt.group}/${rt.plural}`];
    if (isPod && JSON.stringify(obj.spec) === JSON.stringify(old.spec)) return Promise.resolve();
    if (template && JSON.stringify(template(obj)) === JSON.stringify(template(old))) return Promise.resolve();
    return this.admit(rt, obj, opts);
  }

  async admitDelete(): Promise<void> {}

  /**
   * A namespace relabelled: labels that do not parse are refused (unless they were already
   * there, unchanged); an enforce level raised is tried on the pods already running, and each
   * distinct set of violations comes back as a warning naming the first pod that has it.
   */
  private async relabel(ns: KubeObject, old: KubeObject, opts: WriteOptions): Promise<void> {
    const [now, before] = [policyOf(ns), policyOf(old)];
    const errs = now.errors.causes;
    if (errs.length && JSON.stringify(errs) !== JSON.stringify(before.errors.causes)) now.errors.throwIfAny('Namespace', ns.metadata.name);
    const [e, was] = [now.enforce, before.enforce];
    if ((e.level === was.level && e.version === was.version) || e.level === 'privileged') return;
    if (e.version === was.version && levels.indexOf(e.level) <= levels.indexOf(was.level)) return;
    opts.warnings?.push(...(await this.existingPodWarnings(ns.metadata.name as string, e)));
  }

  private async existingPodWarnings(namespace: string, enforce: LevelVersion): Promise<string[]> {
    let pods: KubeObject[];
    try {
      pods = await this.listPods(namespace);
    } catch (err) {
      this.log.warn('pod security: listing pods failed', { namespace, err });
      return ['failed to list pods while checking new PodSecurity enforce level'];
    }
    const warnings: string[] = [];
    if (pods.length > maxPodsChecked) warnings.push(`new PodSecurity enforce level only checked against the first ${maxPodsChecked} of ${pods.length} existing pods`);
    /** Short reasons (upstream's ForbiddenReason) -> the lexically first pod with them, and how many. */
    const byReasons = new Map<string, { pod: string; count: number }>();
    for (const pod of pods.slice(0, maxPodsChecked)) {
      const v = podSecurityViolations(enforce.level, pod.metadata, pod.spec);
      if (!v.length) continue;
      const reasons = [...new Set(v.map((x) => x.split(' (')[0]))].join(', ');
      const name = pod.metadata.name as string;
      const seen = byReasons.get(reasons);
      if (!seen) byReasons.set(reasons, { pod: name, count: 1 });
      else {
        seen.count++;
        if (name < seen.pod) seen.pod = name;
      }
    }
    if (!byReasons.size) return warnings;
    warnings.push(`existing pods in namespace "${namespace}" violate the new PodSecurity enforce level "${show(enforce)}"`);
    const decorated = [...byReasons].map(([reasons, { pod, count }]) => {
      if (count === 1) return `${pod}: ${reasons}`;
      return `${pod} (and ${count - 1} other ${count === 2 ? 'pod' : 'pods'}): ${reasons}`;
    });
    return [...warnings, ...decorated.sort()];
  }

  private async admit(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void> {
    const isPod = rt.group === '' && rt.plural === 'pods';
    const template = templates[`${rt.group}/${rt.plural}`];
    if (!isPod && !template) return;
    const name = obj.metadata.namespace as string;
    const ns = await this.namespaces.get(name);
    if (!ns) return;
    const { enforce, warn, audit } = policyOf(ns);
    if (enforce.level === 'privileged' && warn.level === 'privileged' && audit.level === 'privileged') return;
    const judged = isPod ? { meta: obj.metadata, spec: obj.spec } : { meta: template?.(obj)?.metadata, spec: template?.(obj)?.spec };
    const violations = (level: Level) => podSecurityViolations(level, judged.meta, judged.spec);
    if (isPod && enforce.level !== 'privileged') {
      const v = violations(enforce.level);
      if (v.length) throw new KubicleError('Forbidden', `pods "${obj.metadata.name ?? ''}" is forbidden: violates PodSecurity "${show(enforce)}": ${v.join(', ')}`);
    }
    // Workload templates are warned about at the enforce level too, as upstream does.
    const warnAt = isPod || levels.indexOf(warn.level) >= levels.indexOf(enforce.level) ? warn : enforce;
    if (warnAt.level !== 'privileged') {
      const v = violations(warnAt.level);
      if (v.length) opts.warnings?.push(`would violate PodSecurity "${show(warnAt)}": ${v.join(', ')}`);
    }
    if (audit.level !== 'privileged') {
      const v = violations(audit.level);
      if (v.length) this.log.info('audit: pod security violation', { namespace: name, resource: rt.plural, name: obj.metadata.name, level: show(audit), violations: v });
    }
  }
}

const isNamespace = (rt: ResourceType) => rt.group === '' && rt.plural === 'namespaces';
