import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../observe/log.js';
import { Cgroups } from './cgroups.js';
import { HostDirs } from './host-dirs.js';
import { ImageStore } from './images/image-store.js';
import { RegistryClient } from './images/registry-client.js';
import { PodNetworks } from './net/pod-networks.js';
import type { SandboxRuntime } from './runtime.js';
import { MicrovmRuntime } from './runtimes/microvm/microvm-runtime.js';
import { RuncRuntime } from './runtimes/runc/runc-runtime.js';
import { SandboxServer } from './server.js';

export interface HostAgentOptions {
  /** Everything the agent keeps: images/, sandboxes/, ipam/. */
  stateDir: string;
  /** The Sandbox API's unix socket. */
  socketPath: string;
  /** This host's pod range. */
  podCidr: string;
  bridge?: string;
  /** TCP listener for remote callers (the provider), with the token they must present. */
  tcp?: { host: string; port: number; token: string };
  /** Image GC: when images exceed this many bytes, unused ones go, least recently used first. */
  imageGcHighBytes?: number;
  imageGcLowBytes?: number;
  /** Directories whose children callers may remove (DELETE /v1/host-dirs): where local volumes live. */
  removableDirRoots?: string[];
}

/**
 * The host agent (`kubicle agent`): the Sandbox API over this host's runtimes and image store.
 * It knows nothing of Kubernetes. It keeps no state in memory that matters: sandboxes and
 * containers are found on disk, so a restarted agent re-adopts what kept running.
 */
export class HostAgent {
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    private readonly opts: HostAgentOptions,
    private readonly log: Logger,
  ) {
    this.ready = new Promise((r) => {
      this.markReady = r;
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    const { stateDir } = this.opts;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    const images = new ImageStore(path.join(stateDir, 'images'), new RegistryClient(), this.log.with({ component: 'images' }));
    const networks = new PodNetworks({ cidr: this.opts.podCidr, bridge: this.opts.bridge, stateDir }, this.log);
    await networks.load();
    const runc = new RuncRuntime({ stateDir: path.join(stateDir, 'sandboxes'), networks, cgroups: new Cgroups() }, this.log.with({ runtime: 'runc' }));
    const microvm = new MicrovmRuntime({ stateDir: path.join(stateDir, 'microvm'), networks, cgroups: new Cgroups() }, this.log.with({ runtime: 'microvm' }));
    const runtimes = new Map<string, SandboxRuntime>([
      ['runc', runc],
      ['microvm', microvm],
    ]);
    const server = new SandboxServer(runtimes, images, networks, this.log, new HostDirs(this.opts.removableDirRoots ?? []), this.opts.tcp?.token);
    await server.listen(this.opts.socketPath, this.opts.tcp);
    // Listing re-adopts: containers that kept running while no agent did are watched again.
    const adopted = [...(await runc.list()), ...(await microvm.list())];
    this.log.info('host agent ready', { socket: this.opts.socketPath, sandboxes: adopted.length });
    // Which accelerator microvm guests get is the machine's answer; ask once, early, and log it.
    void microvm.acceleration().catch((err) => this.log.warn('microvm acceleration probe failed', { err }));
    this.markReady();
    const gc = setInterval(() => void this.collectImages(images, runtimes), 60_000);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    clearInterval(gc);
    server.close();
  }

  /** Kubelet-style image GC: above the high mark, prune unused images down to the low mark. */
  private async collectImages(images: ImageStore, runtimes: Map<string, SandboxRuntime>): Promise<void> {
    const high = this.opts.imageGcHighBytes ?? 20 * 2 ** 30;
    const low = this.opts.imageGcLowBytes ?? 15 * 2 ** 30;
    const all = await images.list();
    if (all.reduce((s, i) => s + i.size, 0) <= high) return;
    const inUse = new Set<string>();
    for (const rt of runtimes.values()) for (const sb of await rt.list()) for (const c of sb.containers) inUse.add(c.imageId);
    await images.prune(inUse, low).catch((err) => this.log.warn('image gc failed', { err }));
  }
}
