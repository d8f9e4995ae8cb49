import type { Readable, Writable } from 'node:stream';
import type { ContainerSpec, ContainerStatus, ExecResult, ExecSpec, FileSpec, LogOptions, SandboxSpec, SandboxStatus, Usage } from './api/types.js';
import type { Image } from './images/image-store.js';

/**
 * What every sandbox runtime (runc, microvm) does. State lives on the host, not in the process:
 * a runtime constructed again over the same state directory sees the sandboxes and containers
 * that kept running (re-adoption). Errors: NotFound for an unknown sandbox or container,
 * Invalid for a bad spec; all others are Internal with the runtime's message.
 */
export interface SandboxRuntime {
  readonly name: string;

  /** Creates the sandbox: network, cgroup, /etc files, volumes. Idempotent for an existing id (returns it as is). */
  createSandbox(spec: SandboxSpec): Promise<SandboxStatus>;

  /**
   * Creates and starts a run of a container; a previous run of the same name is kept (for
   * its logs) until the next start. A command that cannot start does not throw: the run is
   * reported exited with reason StartError and the runtime's message. Conflict when a run
   * of that name is still running.
   */
  startContainer(sandboxId: string, spec: ContainerSpec, image: Image): Promise<ContainerStatus>;

  /** SIGTERM, then SIGKILL after `graceSeconds`. Resolves once the process is gone. Idempotent. */
  stopContainer(sandboxId: string, name: string, graceSeconds: number): Promise<void>;

  /** Stops every container and removes everything the sandbox had on the host. Idempotent; never NotFound. */
  removeSandbox(sandboxId: string, graceSeconds: number): Promise<void>;

  /** The sandbox with the latest run of each container. NotFound when absent. */
  status(sandboxId: string): Promise<SandboxStatus>;

  /** Every sandbox of this runtime on the host, or only those whose labels include all of `labels`. */
  list(labels?: Record<string, string>): Promise<SandboxStatus[]>;

  /** Replaces the content of a `files` volume (configMap and secret updates). */
  updateFiles(sandboxId: string, volume: string, files: FileSpec[]): Promise<void>;

  /** A container's log as text lines (with RFC 3339 timestamps when asked); follows until the run exits. */
  logs(sandboxId: string, name: string, opts: LogOptions, signal: AbortSignal): Promise<Readable>;

  /** Runs a command in a running container and collects its output (probes, short commands). */
  exec(sandboxId: string, name: string, command: string[], timeoutMs: number): Promise<{ exitCode: number; output: string }>;

  /**
   * Starts a command in a running container with its streams open to the caller (exec -it,
   * cp). Conflict when the container is not running; a command that cannot start still
   * returns a process, which ends with the runtime's message and a non-zero code.
   */
  execStream(sandboxId: string, name: string, spec: ExecSpec): Promise<StreamedProcess>;

  /**
   * Attaches to a running container: its output from now on, and with `stdin` its input (BadRequest
   * unless the container was started with stdin). Resizes reach its terminal when it has one. The
   * process ends with the container's exit code when the container exits; killing it detaches
   * and leaves the container running. Conflict when the container is not running.
   */
  attach(sandboxId: string, name: string, stdin: boolean): Promise<StreamedProcess>;

  /**
   * A TCP connection to `port` on the sandbox's own loopback, as a process whose stdin is what
   * is sent and whose stdout is what comes back. It ends with a non-zero code and a message
   * when nothing accepts the connection.
   */
  portForward(sandboxId: string, port: number): Promise<StreamedProcess>;

  usage(sandboxId: string, name?: string): Promise<Usage>;

  /** Host leftovers of a removed sandbox (processes, mounts, cgroups, namespaces) — empty when clean. */
  leftovers(sandboxId: string): Promise<string[]>;
}

/** A process whose streams the caller drives. */
export interface StreamedProcess {
  /** Present when input was asked for; ending it closes the process's input. */
  stdin?: Writable;
  stdout: Readable;
  /** Absent on a terminal, where everything comes on stdout. */
  stderr?: Readable;
  /** Sets the terminal's size; ignored without one. */
  resize(cols: number, rows: number): void;
  /** Kills the process (the caller went away). Idempotent. */
  kill(): void;
  /** Settles once the process has exited and its output has been read to the end. Never rejects. */
  done: Promise<ExecResult>;
}
