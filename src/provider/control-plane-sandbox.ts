import { existsSync } from 'node:fs';
import { chown, copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ContainerSpec, SandboxSpec } from '../sandbox/api/types.js';

/**
 * How a replica of a cluster's control plane is laid out as a sandbox on a host (DESIGN §1): one
 * runc container running `kubicle controlplane`, serving the API on a unix socket in its data
 * volume, which the provider's endpoint gateway connects to. The first replica runs on its
 * cluster's own pod network, beside the cluster's pods (it reaches them, for probes and streams,
 * and they reach it as the `kubernetes` Service; the isolated network reaches nothing else), and
 * runs the virtual kubelet. Further replicas run on other hosts, where that network is not: they
 * have no network at all, and serve the API, controllers and scheduler (leader-elected) to
 * clients through the gateway. Each mounts its data volume (CA, keys, kubeconfig; the store of a
 * lone SQLite replica), read-only the directory holding the provider's sockets for its cluster
 * (Sandbox API, store relay), and read-only the Node.js runtime and Kubicle's own files from the
 * host. It sees no other cluster's files.
 */
export interface ControlPlaneLayout {
  /** The host agent's sandbox id. */
  sandboxId: string;
  /** The replica's data directory on the host, mounted read-write as /var/lib/kubicle. */
  dataDir: string;
  /** The endpoint clients use; the serving certificate is made for it. */
  endpoint: { address: string; port: number };
  resources: { cpuMillis: number; memoryBytes: number; pids: number };
  /** The cluster's pod network on the host agent, and its range: the first replica's only. */
  network?: { name: string; cidr: string };
  /** One of several replicas: leases are renewed as upstream's are, so a successor takes over in seconds. */
  replicated: boolean;
  /** The host directory of the provider's Sandbox API socket for this cluster (sandboxSocketName). */
  runDir: string;
  /** The virtual node's capacity (the tenant's quota, or the host's). */
  node: { cpu: string; memory: string };
}

export interface ControlPlaneImage {
  /** A small base image (busybox) the host agent pulls; the runtime comes from the host. */
  image: string;
  /** Kubicle's install directory on the host (holding dist/ and node_modules/). */
  installDir: string;
  /** The Node.js binary on the host, under /usr. */
  nodeBinary: string;
  logLevel: string;
}

const dataMount = '/var/lib/kubicle';
const runMount = '/run/kubicle-provider';
/** The provider's Sandbox API socket in a cluster's run directory. */
export const sandboxSocketName = 'sandbox.sock';
/** The relay to the shared etcd in a cluster's run directory (clusters of `spec.store: etcd`). */
export const storeSocketName = 'etcd.sock';

/**
 * The --store of a control plane on the shared etcd: its prefix, its user, the password from its
 * data volume (written there by the provider) and etcd reached through its relay socket. It
 * never compacts: the etcd's revision is every cluster's (see the container's flags).
 */
export function controlPlaneEtcdStore(grant: { root: string; user: string }): string {
  const q = new URLSearchParams({ socket: `${runMount}/${storeSocketName}`, user: grant.user, 'password-file': `${dataMount}/pki/etcd.password` });
  return `etcd://${grant.root.replace(/\/$/, '')}?${q}`;
}
/** The unprivileged user control planes run as (nobody). */
export const controlPlaneUid = 65534;

/** The socket the control plane serves on, as the host sees it. */
export function apiSocketPath(dataDir: string): string {
  return path.join(dataDir, 'api.sock');
}

export function controlPlaneSandbox(l: ControlPlaneLayout, img: ControlPlaneImage, hostname: string, labels: Record<string, string>): SandboxSpec {
  return {
    id: l.sandboxId,
    hostname,
    labels,
    ...(l.network ? { network: 'pod' as const, podNetwork: l.network.name } : { network: 'none' as const }),
    resources: l.resources,
    volumes: [
      { name: 'data', type: 'host', path: l.dataDir, create: 'directory' },
      { name: 'provider', type: 'host', path: l.runDir },
      { name: 'kubicle', type: 'host', path: img.installDir },
      { name: 'usr', type: 'host', path: '/usr' },
      { name: 'lib', type: 'host', path: '/usr/lib' },
      ...(existsSync('/usr/lib64') ? [{ name: 'lib64', type: 'host' as const, path: '/usr/lib64' }] : []),
    ],
  };
}

/** `store`: the control plane's --store (its SQLite file when absent). */
export function controlPlaneContainer(l: ControlPlaneLayout, img: ControlPlaneImage, store?: string): ContainerSpec {
  return {
    name: 'control-plane',
    image: img.image,
    command: [
      img.nodeBinary,
      // A small young generation: an idle control plane allocates little, and each MiB counts (DESIGN §7).
      '--max-semi-space-size=1',
      '/opt/kubicle/bin/kubicle.js',
      'controlplane',
      '--data-dir',
      dataMount,
      '--listen-socket',
      `${dataMount}/api.sock`,
      '--host',
      l.endpoint.address,
      '--port',
      String(l.endpoint.port),
      ...(l.network
        ? ['--sandbox-socket', `${runMount}/${sandboxSocketName}`, '--pod-cidr', l.network.cidr, '--node-cpu', l.node.cpu, '--node-memory', l.node.memory]
        : // Off the pod network: the first replica is the `kubernetes` Service's endpoint, and runs the kubelet.
          ['--endpoint-reconciler-type', 'none']),
      '--log-level',
      img.logLevel,
      // Idle clusters are the common case: leases renewed every 10 s, not 2 (ADR 0022). A
      // replicated one is paid for to survive a replica's loss, and hands over within 15 s.
      ...(l.replicated
        ? ['--leader-elect-lease-duration', '15', '--leader-elect-renew-deadline', '10', '--leader-elect-retry-period', '2']
        : ['--leader-elect-lease-duration', '60', '--leader-elect-renew-deadline', '40', '--leader-elect-retry-period', '10']),
      // A shared etcd is compacted by its operator, never by one of its tenants.
      ...(store ? ['--store', store, '--compact-interval', '0'] : []),
    ],
    env: [{ name: 'HOME', value: dataMount }],
    resources: { cpuRequestMillis: Math.min(l.resources.cpuMillis, 100), cpuLimitMillis: l.resources.cpuMillis, memoryLimitBytes: l.resources.memoryBytes },
    // Not root: the data volume is handed to this user; nothing else in the sandbox is writable to it.
    user: { uid: controlPlaneUid, gid: controlPlaneUid },
    noNewPrivileges: true,
    capabilities: { drop: ['ALL'] },
    mounts: [
      { volume: 'data', containerPath: dataMount },
      { volume: 'provider', containerPath: runMount, readOnly: true },
      { volume: 'kubicle', containerPath: '/opt/kubicle', readOnly: true },
      { volume: 'usr', containerPath: '/usr', readOnly: true },
      { volume: 'lib', containerPath: '/lib', readOnly: true },
      ...(existsSync('/usr/lib64') ? [{ volume: 'lib64', containerPath: '/lib64', readOnly: true }] : []),
    ],
  };
}

/**
 * Makes a control plane's data directory, its user's own. On a first start it gets the
 * cluster's keys from `takeKey` (a pool: RSA generation is the slow part of a create); the
 * control plane makes its certificates for them and signs tokens with sa.key, making only what
 * is missing.
 */
export async function prepareDataDir(dataDir: string, takeKey: () => Promise<string>): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chown(dataDir, controlPlaneUid, controlPlaneUid);
  const pki = path.join(dataDir, 'pki');
  if (existsSync(path.join(pki, 'ca.crt'))) return;
  await mkdir(pki, { recursive: true, mode: 0o700 });
  await chown(pki, controlPlaneUid, controlPlaneUid);
  for (const name of ['ca', 'serving', 'admin', 'sa']) {
    const file = path.join(pki, `${name}.key`);
    await writeFile(file, await takeKey(), { mode: 0o600 });
    await chown(file, controlPlaneUid, controlPlaneUid);
  }
}

/**
 * Makes a further replica's data directory, its user's own, with the first replica's PKI (the
 * cluster's one CA, its keys and its store password, as copied to a host of its own): all
 * replicas sign and accept the same tokens and certificates. Copied at each start, so a rotated
 * store password reaches it.
 */
export async function prepareReplicaDataDir(dataDir: string, firstDataDir: string): Promise<void> {
  await mkdir(path.join(dataDir, 'pki'), { recursive: true, mode: 0o700 });
  for (const dir of [dataDir, path.join(dataDir, 'pki')]) await chown(dir, controlPlaneUid, controlPlaneUid);
  for (const name of await readdir(path.join(firstDataDir, 'pki'))) {
    const to = path.join(dataDir, 'pki', name);
    await copyFile(path.join(firstDataDir, 'pki', name), to);
    await chown(to, controlPlaneUid, controlPlaneUid);
  }
}
