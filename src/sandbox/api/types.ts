/**
 * The Sandbox API's own types, version v1. Kubernetes-free on purpose: a sandbox is a group of
 * containers sharing a network namespace and a cgroup, with volumes; the kubelet maps pods onto
 * it, the provider will place it on hosts. Sizes are bytes, CPU is millicores, times are RFC 3339.
 */

export interface SandboxSpec {
  /** Caller-chosen, unique on the host: [a-z0-9][a-z0-9.-]{0,62}. */
  id: string;
  hostname: string;
  /** Free-form labels for the caller's bookkeeping (e.g. which pod this is). */
  labels?: Record<string, string>;
  /** Limits for the whole sandbox (its parent cgroup). */
  resources?: SandboxResources;
  /**
   * 'pod' gives the sandbox its own network namespace with an address on the host's pod bridge;
   * 'none' its own namespace with only loopback (it talks to the world through unix sockets in its
   * volumes, as a tenant control plane does); 'host' shares the host's.
   */
  network?: 'pod' | 'none' | 'host';
  /** With network 'pod': the network defined by `PUT /v1/networks/NAME` to join; the host's own when absent. */
  podNetwork?: string;
  dns?: { nameservers?: string[]; searches?: string[]; options?: string[] };
  /** Extra /etc/hosts lines. */
  hostAliases?: { ip: string; hostnames: string[] }[];
  volumes?: VolumeSpec[];
}

/** An isolated pod network of its own bridge and range (a tenant cluster's). */
export interface NetworkSpec {
  /** IPv4 range; the bridge takes the first address. */
  cidr: string;
}

export interface NetworkStatus extends NetworkSpec {
  name: string;
  bridge: string;
}

export interface SandboxResources {
  cpuMillis?: number;
  memoryBytes?: number;
  pids?: number;
}

/**
 * A volume the agent keeps for the sandbox's life: `dir` (an empty directory, or tmpfs when
 * medium is memory), `files` (content the caller sets and may replace later: configMap, secret,
 * projected, downward API), or `host` (a host path; the caller decides whether policy allows it).
 */
export type VolumeSpec =
  | { name: string; type: 'dir'; medium?: 'disk' | 'memory'; sizeLimitBytes?: number }
  | { name: string; type: 'files'; files: FileSpec[] }
  | { name: string; type: 'host'; path: string; create?: 'directory' | 'none' };

export interface FileSpec {
  /** Relative path inside the volume, no `..`. */
  path: string;
  /** Base64 content. */
  data: string;
  mode?: number;
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Replaces the image's entrypoint (and then its cmd too), as Kubernetes' `command`. */
  command?: string[];
  /** Replaces the image's cmd, as Kubernetes' `args`. */
  args?: string[];
  /** Added over the image's environment, in order. */
  env?: { name: string; value: string }[];
  workingDir?: string;
  user?: { uid?: number; gid?: number; supplementalGroups?: number[] };
  capabilities?: { add?: string[]; drop?: string[] };
  privileged?: boolean;
  readOnlyRootfs?: boolean;
  /** Sets no_new_privs (Kubernetes allowPrivilegeEscalation: false). */
  noNewPrivileges?: boolean;
  resources?: ContainerResources;
  mounts?: MountSpec[];
  /** Start with an open input (Kubernetes stdin), which attach can then carry. */
  stdin?: boolean;
  /** Close that input when the first attach ends (Kubernetes stdinOnce). */
  stdinOnce?: boolean;
  tty?: boolean;
}

export interface ContainerResources {
  /** Relative CPU weight from requests. */
  cpuRequestMillis?: number;
  /** Hard CPU ceiling (CFS quota). */
  cpuLimitMillis?: number;
  memoryLimitBytes?: number;
}

export interface MountSpec {
  volume: string;
  containerPath: string;
  subPath?: string;
  readOnly?: boolean;
}

export type ContainerState = 'created' | 'running' | 'exited' | 'unknown';

export interface ContainerStatus {
  name: string;
  /** Unique per run of the container: restarts get a new id. */
  id: string;
  /** How many runs of this name came before this one. */
  attempt: number;
  image: string;
  imageId: string;
  state: ContainerState;
  pid?: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  /** OOMKilled, Error, Completed, StartError. */
  reason?: string;
  message?: string;
}

export interface SandboxStatus {
  id: string;
  state: 'ready' | 'stopped';
  labels: Record<string, string>;
  createdAt: string;
  ip?: string;
  containers: ContainerStatus[];
}

export interface ImageSummary {
  id: string;
  digest: string;
  references: string[];
  size: number;
}

export interface RegistryAuth {
  /** host[:port] the credentials are for. */
  registry: string;
  username?: string;
  password?: string;
  token?: string;
}

export interface Usage {
  /** Total CPU time used, nanoseconds. */
  cpuNanos: number;
  memoryBytes: number;
  timestamp: string;
}

/** The host an agent runs on, as `GET /v1/host` reports it: what a provider places sandboxes by. */
export interface HostInfo {
  hostname: string;
  /** The machine's CPUs (in thousandths) and memory, as the kernel reports them. */
  capacity: { cpuMillis: number; memoryBytes: number };
  /** Memory the kernel deems available now (MemAvailable). */
  availableMemoryBytes: number;
  runtimes: string[];
}

/** One sandbox's usage as `GET /v1/usage` lists it. */
export interface SandboxUsage {
  id: string;
  labels: Record<string, string>;
  /** Whether any of its containers has a process. */
  running: boolean;
  usage: Usage;
}

export interface LogOptions {
  follow?: boolean;
  /** Which run of the container: its current one, or the one before (Kubernetes --previous). */
  previous?: boolean;
  tailLines?: number;
  sinceTime?: string;
  timestamps?: boolean;
  limitBytes?: number;
}

export interface ExecSpec {
  command: string[];
  /** Keep the process's stdin open for the client's input. */
  stdin?: boolean;
  /** Run on a terminal: one output stream, resizable. */
  tty?: boolean;
  /** The terminal's size from the start (80×24 when not given). */
  size?: { cols: number; rows: number };
}

/** How a streamed process ended: its exit code, or a message when it could not run or was cut short. */
export interface ExecResult {
  exitCode: number;
  message?: string;
}
