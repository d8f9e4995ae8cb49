import { randomInt } from 'node:crypto';
import { FieldErrors } from '../../api/field-errors.js';
import { type Cidr, cidrContains, formatIPv4, parseCidr, parseIPv4 } from '../../api/ipv4.js';
import type { KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { isCode, KubicleError } from '../../observe/errors.js';
import type { Logger } from '../../observe/log.js';
import type { Backend } from '../../storage/backend.js';
import { decode, keyFor } from '../object-codec.js';
import type { Admission, WriteOptions } from '../object-store.js';

export interface ServiceRanges {
  /** Where cluster IPs come from; the first usable address is the `kubernetes` Service's. */
  serviceCidr: Cidr;
  /** Inclusive node port range, upstream's 30000-32767 by default. */
  nodePorts: { min: number; max: number };
}

/** Parses the service range and the node port range ("min-max"); Invalid with the reason if unusable. */
export function serviceRanges(cidrText: string, portRange: string): ServiceRanges {
  const serviceCidr = parseCidr(cidrText);
  if (!serviceCidr) throw new KubicleError('Invalid', `service CIDR ${JSON.stringify(cidrText)} is not an IPv4 network such as 10.96.0.0/12`);
  if (serviceCidr.bits < 12 || serviceCidr.bits > 28) throw new KubicleError('Invalid', `service CIDR ${cidrText}: the prefix must be /12 to /28`);
  const m = /^([0-9]{1,5})-([0-9]{1,5})$/.exec(portRange);
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (!m || min < 1 || max > 65535 || min > max) throw new KubicleError('Invalid', `node port range ${JSON.stringify(portRange)} is not "min-max" within 1-65535`);
  return { serviceCidr, nodePorts: { min, max } };
}

interface Owner {
  namespace: string;
  name: string;
  uid: string;
}

const ipPrefix = '/kubicle/allocations/service-ips/';
const portPrefix = '/kubicle/allocations/node-ports/';
/** A claim this old whose Service does not hold it is a leftover. */
const staleAfterMs = 10_000;
const withNodePorts = (type: unknown) => type === 'NodePort' || type === 'LoadBalancer';

/**
 * Cluster IPs and node ports for Services, as upstream's allocators: an unset clusterIP gets a free
 * address of the service range, an asked-for one must be in range and free; NodePort and
 * LoadBalancer ports get node ports the same way. Each allocation is one key in the store created
 * only if absent (like upstream's IPAddress objects), so two API servers never hand out one address.
 * Dynamic picks come from the upper part of a range first, leaving the lower part for addresses
 * people choose (upstream's static band, KEP-3070).
 *
 * Allocations are released when a Service is deleted or stops using them; a create that fails
 * gives back what it took. What a crash leaves behind is reclaimed by `repair`.
 */
export class ServiceAllocation implements Admission {
  private readonly services: ResourceType;

  constructor(
    registry: Registry,
    private readonly backend: Backend,
    private readonly ranges: ServiceRanges,
    private readonly log: Logger,
  ) {
    this.services = registry.mustLookup('', 'v1', 'services');
  }

  async admitCreate(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void> {
    if (isServices(rt)) await this.claim(obj, undefined, opts.dryRun ?? false);
  }

  async admitUpdate(rt: ResourceType, obj: KubeObject, old: KubeObject, opts: WriteOptions): Promise<void> {
    if (isServices(rt)) await this.claim(obj, old, opts.dryRun ?? false);
  }

  async admitDelete(): Promise<void> {}

  committed(rt: ResourceType, obj: KubeObject | undefined, old: KubeObject | undefined): void {
    if (!isServices(rt) || !old) return;
    const keep = new Set(obj ? this.keysOf(obj) : []);
    this.release(this.keysOf(old).filter((k) => !keep.has(k)));
  }

  aborted(rt: ResourceType, obj: KubeObject): void {
    if (isServices(rt)) this.release(this.keysOf(obj), obj.metadata.uid);
  }

  /** The allocation keys a stored Service holds. */
  private keysOf(svc: KubeObject): string[] {
    const keys: string[] = [];
    const ip = parseIPv4(svc.spec?.clusterIP);
    if (ip !== undefined && cidrContains(this.ranges.serviceCidr, ip)) keys.push(ipPrefix + formatIPv4(ip));
    if (withNodePorts(svc.spec?.type)) {
      for (const p of (svc.spec?.ports ?? []) as KubeObject[]) if (Number.isInteger(p?.nodePort)) keys.push(portKey(p.protocol ?? 'TCP', p.nodePort));
    }
    return keys;
  }

  /** Fills in and claims the cluster IP and node ports `svc` needs. Throws Invalid (or Internal when a range is full). */
  private async claim(svc: KubeObject, old: KubeObject | undefined, dryRun: boolean): Promise<void> {
    const spec = svc.spec ?? {};
    const owner: Owner = { namespace: svc.metadata.namespace ?? '', name: svc.metadata.name ?? '', uid: svc.metadata.uid ?? '' };
    const invalid = (field: string, value: unknown, detail: string) => {
      const errs = new FieldErrors();
      errs.invalid(field, value, detail);
      return errs.toError('Service', owner.name);
    };
    const taken: string[] = [];
    try {
      if (spec.type !== 'ExternalName' && spec.clusterIP !== 'None') {
        const cidr = this.ranges.serviceCidr;
        if (!spec.clusterIP) {
          const ip = await this.allocate(ipPrefix, cidr.base + 1, cidr.base + cidr.size - 2, formatIPv4, owner, dryRun);
          if (ip === undefined) throw new KubicleError('Internal', 'Internal error occurred: failed to allocate a serviceIP: range is full');
          spec.clusterIP = formatIPv4(ip);
          spec.clusterIPs = [spec.clusterIP];
          if (!dryRun) taken.push(ipPrefix + spec.clusterIP);
        } else if (spec.clusterIP !== old?.spec?.clusterIP) {
          const ip = parseIPv4(spec.clusterIP) as number;
          const fail = (why: string) => invalid('spec.clusterIPs', [spec.clusterIP], `failed to allocate IP ${spec.clusterIP}: ${why}`);
          if (!cidrContains(cidr, ip) || ip === cidr.base || ip === cidr.base + cidr.size - 1) {
            throw fail(`the provided IP (${spec.clusterIP}) is not in the valid range. The range of valid IPs is ${cidr.text}`);
          }
          if (!(await this.take(ipPrefix + spec.clusterIP, owner, dryRun))) throw fail('provided IP is already allocated');
          if (!dryRun) taken.push(ipPrefix + spec.clusterIP);
        }
      }
      if (withNodePorts(spec.type) && spec.allocateLoadBalancerNodePorts !== false) {
        const { min, max } = this.ranges.nodePorts;
        const had = new Set(old && withNodePorts(old.spec?.type) ? ((old.spec?.ports ?? []) as KubeObject[]).map((p) => portKey(p.protocol ?? 'TCP', p.nodePort)) : []);
        const ports = (spec.ports ?? []) as KubeObject[];
        for (const [i, p] of ports.entries()) {
          const protocol = p.protocol ?? 'TCP';
          if (p.nodePort === undefined) {
            // Ports of one number over TCP and UDP share one node port, as upstream.
            const twin = ports.find((q) => q !== p && q.port === p.port && q.nodePort !== undefined && (q.protocol ?? 'TCP') !== protocol);
            const port = twin
              ? ((await this.take(portKey(protocol, twin.nodePort), owner, dryRun)) ? twin.nodePort : undefined)
              : await this.allocate(`${portPrefix}${protocol}/`, min, max, String, owner, dryRun);
            if (port === undefined) throw new KubicleError('Internal', 'Internal error occurred: failed to allocate a nodePort: range is full');
            p.nodePort = port;
          } else if (!had.has(portKey(protocol, p.nodePort))) {
            if (p.nodePort < min || p.nodePort > max) {
              throw invalid(`spec.ports[${i}].nodePort`, p.nodePort, `provided port is not in the valid range. The range of valid ports is ${min}-${max}`);
            }
            if (!(await this.take(portKey(protocol, p.nodePort), owner, dryRun))) throw invalid(`spec.ports[${i}].nodePort`, p.nodePort, 'provided port is already allocated');
          } else continue;
          if (!dryRun) taken.push(portKey(protocol, p.nodePort));
        }
      }
    } catch (err) {
      this.release(taken, owner.uid);
      throw err;
    }
  }

  /**
   * Claims `key` for `owner`: true if it was free or is already the owner's. A dry run only looks.
   */
  private async take(key: string, owner: Owner, dryRun: boolean): Promise<boolean> {
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!dryRun) {
        try {
          await this.backend.create(key, Buffer.from(JSON.stringify({ ...owner, at: Date.now() })));
          return true;
        } catch (err) {
          if (!isCode(err, 'AlreadyExists')) throw err;
        }
      }
      const kv = await this.backend.get(key);
      if (!kv) return true;
      const holder = ownerOf(kv.value);
      if (holder?.uid === owner.uid) return true;
      const live = holder ? await this.liveUid(holder) : undefined;
      // Creating a Service that exists: the write would fail, so fail as it would.
      if (live && holder?.namespace === owner.namespace && holder.name === owner.name) throw new KubicleError('AlreadyExists', `services "${owner.name}" already exists`);
      // Held by a Service that is gone (a crash between claim and write): reclaim it now,
      // unless the claim is so young that its create may still be on the way.
      if (live === holder?.uid || Date.now() - (holder?.at ?? 0) < staleAfterMs || dryRun) return false;
      await this.backend.delete(key, kv.modRevision).catch(() => {});
    }
    return false;
  }

  /** The uid of the stored Service the record names, if there is one. */
  private async liveUid(o: Owner): Promise<string | undefined> {
    const kv = await this.backend.get(keyFor(this.services, o.namespace, o.name));
    return kv ? decode(kv).metadata.uid : undefined;
  }

  /**
   * A free value in [lo, hi] under `prefix`, claimed for `owner` (a dry run claims nothing). Tries
   * random picks in the dynamic band first, then walks the allocated keys for a gap. Undefined when full.
   */
  private async allocate(prefix: string, lo: number, hi: number, name: (n: number) => string, owner: Owner, dryRun: boolean): Promise<number | undefined> {
    const size = hi - lo + 1;
    if (size <= 0) return undefined;
    const staticBand = Math.min(Math.max(16, Math.floor(size / 16)), 256);
    const dynLo = size > staticBand * 2 ? lo + staticBand : lo;
    for (let i = 0; i < 8; i++) {
      const n = randomInt(dynLo, hi + 1);
      if (await this.take(prefix + name(n), owner, dryRun)) return n;
    }
    const used = new Set((await this.backend.list(prefix)).items.map((kv) => kv.key.slice(prefix.length)));
    const order = [...band(dynLo, hi), ...band(lo, dynLo - 1)];
    for (const n of order) {
      if (used.has(name(n))) continue;
      if (await this.take(prefix + name(n), owner, dryRun)) return n;
    }
    return undefined;
  }

  /** Drops allocation keys (only those held by `uid` when given). Never throws; a leftover is repaired later. */
  private release(keys: string[], uid?: string): void {
    for (const key of keys) {
      void (async () => {
        const kv = await this.backend.get(key);
        if (!kv || (uid && ownerOf(kv.value)?.uid !== uid)) return;
        await this.backend.delete(key, kv.modRevision);
      })().catch((err) => this.log.warn('service allocation not released', { key, err }));
    }
  }

  /**
   * Makes the allocation keys match the stored Services: claims what a Service holds without a key
   * (bootstrap, upgrades) and drops keys older than `graceMs` whose Service is gone or no longer
   * uses them. Idempotent; run at start and now and then.
   */
  async repair(services: KubeObject[], graceMs = 60_000): Promise<void> {
    const held = new Map<string, Owner>();
    for (const svc of services) for (const key of this.keysOf(svc)) held.set(key, { namespace: svc.metadata.namespace ?? '', name: svc.metadata.name ?? '', uid: svc.metadata.uid ?? '' });
    const now = Date.now();
    for (const prefix of [ipPrefix, portPrefix]) {
      for (const kv of (await this.backend.list(prefix)).items) {
        const owner = ownerOf(kv.value);
        const holder = held.get(kv.key);
        if (holder && holder.uid === owner?.uid) {
          held.delete(kv.key);
          continue;
        }
        if (holder || now - (owner?.at ?? 0) > graceMs) {
          await this.backend.delete(kv.key, kv.modRevision).catch(() => {});
          if (!holder) this.log.info('service allocation reclaimed', { key: kv.key, owner: owner ? `${owner.namespace}/${owner.name}` : undefined });
        }
      }
    }
    for (const [key, owner] of held) {
      await this.backend.create(key, Buffer.from(JSON.stringify({ ...owner, at: now }))).catch((err) => {
        if (!isCode(err, 'AlreadyExists')) throw err;
      });
    }
  }
}

function isServices(rt: ResourceType): boolean {
  return rt.group === '' && rt.plural === 'services';
}

function portKey(protocol: string, port: number): string {
  return `${portPrefix}${protocol}/${port}`;
}

function ownerOf(value: Uint8Array): (Owner & { at?: number }) | undefined {
  try {
    return JSON.parse(Buffer.from(value).toString('utf8'));
  } catch {
    return undefined;
  }
}

function* band(lo: number, hi: number): Generator<number> {
  for (let n = lo; n <= hi; n++) yield n;
}
