import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ContainerSpec, SandboxSpec } from '../sandbox/api/types.js';

/**
 * How a cluster's control plane is laid out as a sandbox on a host (DESIGN §1): one runc
 * container running `kubicle controlplane` with its own network namespace holding only loopback
 * (it reaches nothing and nothing reaches it but through the unix socket in its data volume,
 * which the provider's gateway connects to), its data volume (store, CA, kubeconfig) and,
 * read-only, the Node.js runtime and Kubicle's own files from the host. It sees no other
 * cluster's files: their data volumes are never mounted here.
 */
export interface ControlPlaneLayout {
  /** The host agent's sandbox id. */
  sandboxId: string;
  /** The cluster's data directory on the host, mounted read-write as /var/lib/kubicle. */
  dataDir: string;
  /** The endpoint clients use; the serving certificate is made for it. */
  endpoint: { address: string; port: number };
  resources: { cpuMillis: number; memoryBytes: number; pids: number };
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
    network: 'none',
    resources: l.resources,
    volumes: [
      { name: 'data', type: 'host', path: l.dataDir, create: 'directory' },
      { name: 'kubicle', type: 'host', path: img.installDir },
      { name: 'usr', type: 'host', path: '/usr' },
      { name: 'lib', type: 'host', path: '/usr/lib' },
      ...(existsSync('/usr/lib64') ? [{ name: 'lib64', type: 'host' as const, path: '/usr/lib64' }] : []),
    ],
  };
}

export function controlPlaneContainer(l: ControlPlaneLayout, img: ControlPlaneImage): ContainerSpec {
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
      '--log-level',
      img.logLevel,
    ],
    env: [{ name: 'HOME', value: dataMount }],
    resources: { cpuRequestMillis: Math.min(l.resources.cpuMillis, 100), cpuLimitMillis: l.resources.cpuMillis, memoryLimitBytes: l.resources.memoryBytes },
    // Not root: the data volume is handed to this user; nothing else in the sandbox is writable to it.
    user: { uid: controlPlaneUid, gid: controlPlaneUid },
    noNewPrivileges: true,
    capabilities: { drop: ['ALL'] },
    mounts: [
      { volume: 'data', containerPath: dataMount },
      { volume: 'kubicle', containerPath: '/opt/kubicle', readOnly: true },
      { volume: 'usr', containerPath: '/usr', readOnly: true },
      { volume: 'lib', containerPath: '/lib', readOnly: true },
      ...(existsSync('/usr/lib64') ? [{ volume: 'lib64', containerPath: '/lib64', readOnly: true }] : []),
    ],
  };
}
