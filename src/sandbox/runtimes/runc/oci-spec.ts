import { KubicleError } from '../../../observe/errors.js';
import type { ContainerSpec } from '../../api/types.js';
import type { ImageConfig } from '../../images/image-store.js';
import { resolveArgv, resolveEnv } from '../../process-spec.js';

/** The capabilities a container gets by default (the set containerd and CRI-O give). */
export const defaultCapabilities = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

const allCapabilities = [
  ...defaultCapabilities,
  'CAP_DAC_READ_SEARCH',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_LEASE',
  'CAP_AUDIT_CONTROL',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

export interface SpecInputs {
  container: ContainerSpec;
  image: ImageConfig;
  hostname: string;
  rootfs: string;
  cgroupsPath: string;
  /** The sandbox's network namespace file; absent shares the host's network. */
  netns?: string;
  /** Host paths for the sandbox's /etc files. */
  etc: { hosts: string; resolvConf: string; hostname: string };
  /** Volume mounts already resolved to host paths. */
  mounts: { source: string; destination: string; readOnly: boolean }[];
  /** uid/gid resolved from the image's User when the spec gives none. */
  user: { uid: number; gid: number; additionalGids: number[] };
}


function capabilitySet(c: ContainerSpec): string[] {
  if (c.privileged) return allCapabilities;
  const norm = (n: string) => (n.toUpperCase() === 'ALL' ? 'ALL' : `CAP_${n.toUpperCase().replace(/^CAP_/, '')}`);
  const drop = (c.capabilities?.drop ?? []).map(norm);
  const add = (c.capabilities?.add ?? []).map(norm);
  let caps = drop.includes('ALL') ? [] : defaultCapabilities.filter((x) => !drop.includes(x));
  caps = add.includes('ALL') ? [...allCapabilities] : [...new Set([...caps, ...add])];
  for (const x of caps) if (!allCapabilities.includes(x)) throw new KubicleError('Invalid', `unknown capability ${x}`);
  return caps;
}

/** An OCI runtime spec (config.json) for one container of a sandbox. */
export function ociSpec(i: SpecInputs): Record<string, unknown> {
  const c = i.container;
  const caps = capabilitySet(c);
  const shares = c.resources?.cpuRequestMillis ? Math.max(2, Math.round((c.resources.cpuRequestMillis * 1024) / 1000)) : 2;
  const resources: Record<string, unknown> = {
    devices: c.privileged ? [{ allow: true, access: 'rwm' }] : [{ allow: false, access: 'rwm' }],
    cpu: { shares, ...(c.resources?.cpuLimitMillis ? { quota: Math.max(1000, Math.round(c.resources.cpuLimitMillis * 100)), period: 100_000 } : {}) },
    ...(c.resources?.memoryLimitBytes ? { memory: { limit: c.resources.memoryLimitBytes, swap: c.resources.memoryLimitBytes } } : {}),
  };
  const namespaces: { type: string; path?: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (i.netns) namespaces.push({ type: 'network', path: i.netns });
  const mounts = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', c.privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    { destination: '/etc/hosts', type: 'bind', source: i.etc.hosts, options: ['rbind', 'rprivate', 'ro'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: i.etc.resolvConf, options: ['rbind', 'rprivate', 'ro'] },
    { destination: '/etc/hostname', type: 'bind', source: i.etc.hostname, options: ['rbind', 'rprivate', 'ro'] },
    ...i.mounts.map((m) => ({ destination: m.destination, type: 'bind', source: m.source, options: ['rbind', 'rprivate', m.readOnly ? 'ro' : 'rw'] })),
  ];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: !!c.tty,
      user: { uid: i.user.uid, gid: i.user.gid, additionalGids: i.user.additionalGids },
      args: resolveArgv(c, i.image),
      env: resolveEnv(c, i.image, i.hostname),
      cwd: c.workingDir || i.image.WorkingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, ...(i.user.uid === 0 ? {} : { ambient: [] }) },
      noNewPrivileges: !!c.noNewPrivileges && !c.privileged,
      oomScoreAdj: 0,
    },
    root: { path: i.rootfs, readonly: !!c.readOnlyRootfs },
    hostname: i.hostname,
    mounts,
    linux: {
      cgroupsPath: i.cgroupsPath,
      resources,
      namespaces,
      ...(c.privileged
        ? {}
        : {
            maskedPaths: ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'],
            readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
          }),
    },
  };
}
