import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubicleError } from '../../observe/errors.js';
import type { Logger } from '../../observe/log.js';

const execFileP = promisify(execFile);

export interface PodNetworkOptions {
  /** The node's pod range, e.g. 10.244.0.0/24; the bridge takes the first address. */
  cidr: string;
  bridge?: string;
  /** Where address leases are kept (one file per address). */
  stateDir: string;
  /**
   * A network closed to everything but itself (a tenant cluster's): nothing is routed between its
   * bridge and any other interface, and its sandboxes reach no address of the host. The host may
   * still open connections to them. Its bridge is an element of the sets of the one shared
   * isolation table (see isolationTable).
   */
  isolated?: boolean;
}

/**
 * One node's pod network: a Linux bridge on the host holding the gateway address, and per sandbox
 * a network namespace (`ip netns`, so it outlives any process) joined to the bridge by a veth pair,
 * with an address leased from the node's range. Leases are files named by address and created
 * with O_EXCL, so two sandboxes never get one address, and a restarted agent finds them.
 */
export class PodNetwork {
  private readonly bridge: string;
  private readonly base: number;
  private readonly prefix: number;
  private ensured?: Promise<void>;
  private leases?: Promise<Map<string, string>>;

  constructor(
    private readonly opts: PodNetworkOptions,
    private readonly log: Logger,
  ) {
    this.bridge = opts.bridge ?? 'kubicle0';
    const [addr, bits] = opts.cidr.split('/');
    this.prefix = Number(bits);
    if (!(this.prefix >= 8 && this.prefix <= 30)) throw new KubicleError('Invalid', `pod CIDR ${opts.cidr}: prefix must be /8 to /30`);
    this.base = (ipToInt(addr) & maskOf(this.prefix)) >>> 0;
  }

  get gateway(): string {
    return intToIp(this.base + 1);
  }

  /** The network namespace's name for a sandbox. */
  static namespaceOf(sandboxId: string): string {
    return `kubicle-${sandboxId}`.slice(0, 60);
  }

  static namespacePath(sandboxId: string): string {
    return `/run/netns/${PodNetwork.namespaceOf(sandboxId)}`;
  }

  /** Creates the bridge with the gateway address once, so host services can bind to it before any pod. Idempotent. */
  ensureBridge(): Promise<void> {
    this.ensured ??= (async () => {
      await mkdir(this.opts.stateDir, { recursive: true });
      const exists = await execFileP('ip', ['link', 'show', this.bridge]).then(
        () => true,
        () => false,
      );
      await this.refuseOverlap();
      if (!exists) await ip([`link add ${this.bridge} type bridge`]);
      await ip([`addr replace ${this.gateway}/${this.prefix} dev ${this.bridge}`, `link set ${this.bridge} up`]);
      if (this.opts.isolated) {
        await isolationTable();
        await nft(`add element inet ${isoTable} bridges { "${this.bridge}" }\nadd element inet ${isoTable} pairs { "${this.bridge}" . "${this.bridge}" }\n`);
      }
    })().catch((err) => {
      this.ensured = undefined;
      throw err;
    });
    return this.ensured;
  }

  /**
   * Refuses a pod range that overlaps an address on another interface (another cluster's bridge,
   * the host's own network): both would claim the same routes and each would break the other.
   */
  private async refuseOverlap(): Promise<void> {
    const { stdout } = await execFileP('ip', ['-j', '-4', 'addr', 'show']);
    const size = 2 ** (32 - this.prefix);
    for (const link of JSON.parse(stdout) as { ifname: string; addr_info?: { local: string; prefixlen: number }[] }[]) {
      if (link.ifname === this.bridge || link.ifname === 'lo') continue;
      for (const a of link.addr_info ?? []) {
        const other = (ipToInt(a.local) & maskOf(a.prefixlen)) >>> 0;
        const otherSize = 2 ** (32 - a.prefixlen);
        if (other < this.base + size && this.base < other + otherSize) {
          throw new KubicleError('Invalid', `pod CIDR ${this.opts.cidr} overlaps ${a.local}/${a.prefixlen} on ${link.ifname}`);
        }
      }
    }
  }

  /**
   * Gives a sandbox its namespace, veth and address; returns the address. Idempotent: an
   * existing lease and namespace for the same id are reused.
   */
  async attach(sandboxId: string): Promise<string> {
    await this.ensureBridge();
    const ns = PodNetwork.namespaceOf(sandboxId);
    const ipAddr = await this.lease(sandboxId);
    const hostIf = `veth${createHash('sha1').update(sandboxId).digest('hex').slice(0, 8)}`;
    const nsExists = await readdir('/run/netns').then(
      (names) => names.includes(ns),
      () => false,
    );
    if (nsExists) await ip([`netns del ${ns}`]).catch(() => {});
    // One `ip` for the host's side (ip restores its own namespace after `netns add`), one inside:
    // each spawn costs more than the commands it runs.
    await ip([`netns add ${ns}`, `link add ${hostIf} type veth peer name eth0 netns ${ns}`, `link set ${hostIf} master ${this.bridge}`, `link set ${hostIf} up`])
      .then(() => ip([`link set lo up`, `addr add ${ipAddr}/${this.prefix} dev eth0`, `link set eth0 up`, `route add default via ${this.gateway}`], ns))
      .catch(async (err) => {
      await ip([`netns del ${ns}`]).catch(() => {});
      throw err;
    });
    this.log.debug('sandbox network attached', { sandbox: sandboxId, ip: ipAddr });
    return ipAddr;
  }

  /**
   * Gives a sandbox a namespace with only loopback up: no veth, no address, no route out.
   * Idempotent. detach() removes it like any other.
   */
  async attachIsolated(sandboxId: string): Promise<void> {
    const ns = PodNetwork.namespaceOf(sandboxId);
    await ip([`netns del ${ns}`]).catch(() => {});
    await ip([`netns add ${ns}`]);
    await ip(['link set lo up'], ns);
  }

  /** The tap device a microvm sandbox's virtio-net sits on. */
  static tapOf(sandboxId: string): string {
    return `tap${createHash('sha1').update(sandboxId).digest('hex').slice(0, 8)}`;
  }

  /**
   * Gives a microvm sandbox a tap device on the bridge and an address, which the guest configures
   * on its own interface: the guest's kernel is the sandbox's network stack, so there is no
   * namespace. Idempotent. Returns what the guest needs to configure.
   */
  async attachTap(sandboxId: string): Promise<{ ip: string; prefix: number; gateway: string; tap: string }> {
    await this.ensureBridge();
    const ipAddr = await this.lease(sandboxId);
    const tap = PodNetwork.tapOf(sandboxId);
    await ip([`link del ${tap}`]).catch(() => {});
    await ip([`tuntap add dev ${tap} mode tap`, `link set ${tap} master ${this.bridge}`, `link set ${tap} up`]);
    this.log.debug('sandbox tap attached', { sandbox: sandboxId, ip: ipAddr, tap });
    return { ip: ipAddr, prefix: this.prefix, gateway: this.gateway, tap };
  }

  /** Whether any sandbox holds an address here. */
  async inUse(): Promise<boolean> {
    return (await readdir(this.opts.stateDir).catch(() => [] as string[])).length > 0;
  }

  /** Removes the bridge, its isolation elements and the lease directory: for a network nobody uses. Idempotent. */
  async destroy(): Promise<void> {
    this.ensured = undefined;
    await ip([`link del ${this.bridge}`]).catch(() => {});
    if (this.opts.isolated) {
      // Both elements or neither: deleting a missing one fails the transaction, which is then done.
      await nft(`delete element inet ${isoTable} bridges { "${this.bridge}" }\ndelete element inet ${isoTable} pairs { "${this.bridge}" . "${this.bridge}" }\n`).catch(() => {});
    }
    await rm(this.opts.stateDir, { recursive: true, force: true });
    this.leases = undefined;
  }

  /** Removes the namespace (its veth goes with it) or tap and frees the address. Idempotent. */
  async detach(sandboxId: string): Promise<void> {
    // -force runs both lines whichever is missing (a runc sandbox has no tap, a microvm no namespace).
    await ip([`netns del ${PodNetwork.namespaceOf(sandboxId)}`, `link del ${PodNetwork.tapOf(sandboxId)}`], undefined, true).catch(() => {});
    await this.release(sandboxId);
  }

  /** Frees the sandbox's address, if it has one here. Idempotent. */
  async release(sandboxId: string): Promise<void> {
    const owners = await this.owners();
    const addr = owners.get(sandboxId);
    if (addr === undefined) return;
    await rm(path.join(this.opts.stateDir, addr), { force: true });
    owners.delete(sandboxId);
  }

  /**
   * Each sandbox's address: the lease files read once, then kept in step by lease and release
   * (this agent is their only writer), so a lease costs the same with 1 or 250 pods on the node.
   */
  private owners(): Promise<Map<string, string>> {
    this.leases ??= (async () => {
      const owners = new Map<string, string>();
      for (const name of await readdir(this.opts.stateDir).catch(() => [] as string[])) {
        const owner = await readFile(path.join(this.opts.stateDir, name), 'utf8').catch(() => '');
        if (owner) owners.set(owner, name);
      }
      return owners;
    })();
    return this.leases;
  }

  private async lease(sandboxId: string): Promise<string> {
    const size = 2 ** (32 - this.prefix);
    const owners = await this.owners();
    const held = owners.get(sandboxId);
    if (held !== undefined) return held;
    // Start at a hash of the id so concurrent attaches rarely race for the same address.
    const start = Number.parseInt(createHash('sha1').update(sandboxId).digest('hex').slice(0, 8), 16) % (size - 3);
    for (let i = 0; i < size - 3; i++) {
      const candidate = intToIp(this.base + 2 + ((start + i) % (size - 3)));
      try {
        const fh = await open(path.join(this.opts.stateDir, candidate), 'wx');
        await fh.writeFile(sandboxId);
        await fh.close();
        owners.set(sandboxId, candidate);
        return candidate;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    throw new KubicleError('Unavailable', `no free pod address left in ${this.opts.cidr}`);
  }
}

const isoTable = 'kubicle-iso';

/**
 * The one table isolating every isolated bridge of this host. Bridged traffic inside a bridge is
 * seen by the forward hook with the bridge as both interfaces (when br_netfilter is loaded), so
 * only what crosses between a listed bridge and any other interface is dropped; replies to
 * connections the host opened are let in. Bridges are set elements, not tables of their own: a
 * table per cluster put two base chains per cluster on every forwarded packet's path, and made
 * each nft run read all of them (at 760 clusters, listing the tables took minutes).
 * Declared once per process; the chains are flushed and filled again in the same transaction, so
 * running it again (another agent, a restart) leaves the same rules and keeps the elements.
 */
let isolationDeclared: Promise<void> | undefined;
function isolationTable(): Promise<void> {
  const t = `inet ${isoTable}`;
  isolationDeclared ??= nft(
    [
      `add table ${t}`,
      `add set ${t} bridges { type ifname; }`,
      `add set ${t} pairs { type ifname . ifname; }`,
      `add chain ${t} forward { type filter hook forward priority filter - 5; policy accept; }`,
      `add chain ${t} input { type filter hook input priority filter - 5; policy accept; }`,
      `flush chain ${t} forward`,
      `flush chain ${t} input`,
      `add rule ${t} forward iifname @bridges iifname . oifname != @pairs drop`,
      `add rule ${t} forward oifname @bridges iifname . oifname != @pairs drop`,
      `add rule ${t} input iifname @bridges ct state established,related accept`,
      `add rule ${t} input iifname @bridges drop`,
      '',
    ].join('\n'),
  ).catch((err) => {
    isolationDeclared = undefined;
    throw err;
  });
  return isolationDeclared;
}

/** Runs an nft script as one transaction. */
function nft(script: string): Promise<void> {
  return batch('nft', ['-f', '-'], script);
}

/** Runs `ip` commands in one batch process (inside `netns` when given); rejects with the first failure's message (with `force`, after running every line). */
function ip(commands: string[], netns?: string, force = false): Promise<void> {
  return batch('ip', [...(netns ? ['-n', netns] : []), ...(force ? ['-force'] : []), '-batch', '-'], `${commands.join('\n')}\n`);
}

/** Runs a tool that reads its commands from stdin; rejects with what it said on stderr. */
function batch(tool: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new KubicleError('Internal', `${tool}: ${err.trim() || `exit ${code}`}`))));
    child.stdin.end(input);
  });
}

function ipToInt(s: string): number {
  const p = s.split('.').map(Number);
  if (p.length !== 4 || p.some((x) => !(x >= 0 && x <= 255))) throw new KubicleError('Invalid', `not an IPv4 address: ${s}`);
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
}
