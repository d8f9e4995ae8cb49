import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { KubicleError } from '../../observe/errors.js';
import type { Logger } from '../../observe/log.js';
import { PodNetwork } from './pod-network.js';

/** A network the agent was given (Sandbox API `PUT /v1/networks/NAME`). */
export interface NetworkInfo {
  name: string;
  cidr: string;
  bridge: string;
}

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The host's pod networks: its own (the default, for sandboxes that name none) and isolated ones
 * callers define by name, one bridge each — a provider gives every tenant cluster its own. The
 * definitions are kept on disk, so a restarted agent knows its networks again.
 */
export class PodNetworks {
  readonly host: PodNetwork;
  private readonly named = new Map<string, { info: NetworkInfo; net: PodNetwork }>();

  constructor(
    private readonly opts: { cidr: string; bridge?: string; stateDir: string },
    private readonly log: Logger,
  ) {
    this.host = new PodNetwork({ cidr: opts.cidr, bridge: opts.bridge, stateDir: path.join(opts.stateDir, 'ipam') }, log);
  }

  private get defsDir(): string {
    return path.join(this.opts.stateDir, 'networks');
  }

  /** Brings up the host's bridge and every defined network's. */
  async load(): Promise<void> {
    await this.host.ensureBridge();
    await mkdir(this.defsDir, { recursive: true });
    for (const f of await readdir(this.defsDir)) {
      const info = JSON.parse(await readFile(path.join(this.defsDir, f), 'utf8')) as NetworkInfo;
      const net = this.make(info);
      this.named.set(info.name, { info, net });
      await net.ensureBridge().catch((err) => this.log.warn('network not restored', { network: info.name, err }));
    }
  }

  /** The network a sandbox names (the host's when none); NotFound for one never defined. */
  of(name?: string): PodNetwork {
    if (!name) return this.host;
    const n = this.named.get(name);
    if (!n) throw new KubicleError('NotFound', `network ${JSON.stringify(name)} is not defined on this host`);
    return n.net;
  }

  list(): NetworkInfo[] {
    return [...this.named.values()].map((n) => n.info);
  }

  /**
   * Defines an isolated network with its own bridge and range, idempotently; Conflict when the
   * name exists with another range, Invalid for a range another interface has.
   */
  async define(name: string, cidr: string): Promise<NetworkInfo> {
    if (!NAME.test(name)) throw new KubicleError('Invalid', `network name ${JSON.stringify(name)} must be a DNS label`);
    const had = this.named.get(name);
    if (had && had.info.cidr !== cidr) throw new KubicleError('Conflict', `network ${name} exists with range ${had.info.cidr}`);
    if (had) return had.info;
    // Bridge names are at most 15 bytes: a digest of the name keeps them unique and short.
    const info: NetworkInfo = { name, cidr, bridge: `kn${createHash('sha256').update(name).digest('hex').slice(0, 10)}` };
    const net = this.make(info);
    await net.ensureBridge();
    await writeFile(path.join(this.defsDir, `${name}.json`), JSON.stringify(info));
    this.named.set(name, { info, net });
    this.log.info('network defined', { ...info });
    return info;
  }

  /** Removes a network; Conflict while a sandbox is on it. Idempotent. */
  async remove(name: string): Promise<void> {
    const n = this.named.get(name);
    if (!n) return;
    if (await n.net.inUse()) throw new KubicleError('Conflict', `network ${name} still has sandboxes`);
    this.named.delete(name);
    await rm(path.join(this.defsDir, `${name}.json`), { force: true });
    await n.net.destroy();
    this.log.info('network removed', { network: name });
  }

  /** Takes a sandbox off whichever network it is on. Idempotent. */
  async detach(sandboxId: string): Promise<void> {
    await this.host.detach(sandboxId);
    for (const n of this.named.values()) await n.net.release(sandboxId);
  }

  private make(info: NetworkInfo): PodNetwork {
    return new PodNetwork({ cidr: info.cidr, bridge: info.bridge, stateDir: path.join(this.opts.stateDir, 'ipam-nets', info.name), isolated: true }, this.log);
  }
}
