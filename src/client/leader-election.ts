import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { type KubeClient, type Obj, resourcePath } from './kube-client.js';

/**
 * Leader election on a coordination.k8s.io/v1 Lease, like client-go's: a candidate takes the
 * lease when it is free or expired, renews it every retry period, and stops leading if it could
 * not renew within the renew deadline. Writes carry the read resourceVersion, so two candidates
 * never both win.
 */
export interface LeaderElectionConfig extends LeaderTimings {
  namespace: string;
  name: string;
  identity: string;
}

/** client-go's timings (defaults 15 s, 10 s, 2 s); retry < renew deadline < lease duration. */
export interface LeaderTimings {
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly path: string;

  constructor(
    private readonly client: KubeClient,
    private readonly cfg: LeaderElectionConfig,
    private readonly log: Logger,
  ) {
    this.leaseDurationMs = cfg.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = cfg.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = cfg.retryPeriodMs ?? 2_000;
    this.path = resourcePath({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespace: cfg.namespace });
  }

  /** The lease as this candidate last wrote it, while it holds it: renewals start from it. */
  private held?: { lease: Obj; at: number };

  /**
   * One attempt to take or renew the lease. Resolves whether this candidate holds it now.
   * A holder whose lease is still valid renews from the copy it last wrote, without reading it
   * first (client-go's optimistic fast path): an idle control plane's two leases cost one write
   * each per retry period, not a read and a write. If that write fails (another wrote the lease,
   * or the server was unreachable), the next attempt reads the lease as a candidate would.
   */
  async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const fast = this.held && now.getTime() - this.held.at < this.leaseDurationMs ? this.held.lease : undefined;
    this.held = undefined;
    const spec = (lease?: Obj) => ({
      holderIdentity: this.cfg.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: lease?.spec?.holderIdentity === this.cfg.identity ? lease.spec.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: (lease?.spec?.leaseTransitions ?? 0) + (lease && lease.spec?.holderIdentity !== this.cfg.identity ? 1 : 0),
    });
    if (fast) {
      try {
        return this.wrote(await this.client.update(`${this.path}/${this.cfg.name}`, { ...fast, spec: spec(fast) }), now);
      } catch (err) {
        this.log.info('optimistic lease renewal failed; reading the lease', { lease: this.cfg.name, err });
      }
    }
    let lease: Obj;
    try {
      lease = await this.client.get(`${this.path}/${this.cfg.name}`);
    } catch (err) {
      if (!isCode(err, 'NotFound')) throw err;
      try {
        return this.wrote(await this.client.create(this.path, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: this.cfg.name, namespace: this.cfg.namespace }, spec: spec() }), now);
      } catch (e) {
        if (isCode(e, 'AlreadyExists')) return false;
        throw e;
      }
    }
    const holder = lease.spec?.holderIdentity;
    const renewed = Date.parse(lease.spec?.renewTime ?? '') || 0;
    const duration = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
    if (holder && holder !== this.cfg.identity && renewed + duration > now.getTime()) return false;
    try {
      return this.wrote(await this.client.update(`${this.path}/${this.cfg.name}`, { ...lease, spec: spec(lease) }), now);
    } catch (err) {
      if (isCode(err, 'Conflict')) return false;
      throw err;
    }
  }

  private wrote(lease: Obj, at: Date): true {
    this.held = { lease, at: at.getTime() };
    return true;
  }

  /**
   * Campaigns until the signal aborts; while leading, runs `lead` with a signal that aborts when
   * leadership is lost. Releases the lease on a clean stop so a successor need not wait.
   */
  async run(signal: AbortSignal, lead: (leading: AbortSignal) => Promise<void>): Promise<void> {
    const sleep = (ms: number) =>
      new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          r();
        }, { once: true });
      });
    while (!signal.aborted) {
      let held = false;
      try {
        held = await this.tryAcquireOrRenew();
      } catch (err) {
        this.log.warn('leader election attempt failed', { lease: this.cfg.name, err });
      }
      if (!held) {
        await sleep(this.retryPeriodMs);
        continue;
      }
      this.log.info('became leader', { lease: this.cfg.name, identity: this.cfg.identity });
      const leading = new AbortController();
      const stopOnOuter = () => leading.abort();
      signal.addEventListener('abort', stopOnOuter, { once: true });
      const work = lead(leading.signal).catch((err) => this.log.error('leader work failed', { err }));
      let lastRenew = Date.now();
      while (!leading.signal.aborted) {
        await sleep(this.retryPeriodMs);
        if (leading.signal.aborted) break;
        // true: renewed; false: someone else holds it now; 'error': unknown, retry until the deadline.
        let result: boolean | 'error';
        try {
          result = await this.tryAcquireOrRenew();
        } catch (err) {
          result = 'error';
          this.log.warn('lease renewal failed', { lease: this.cfg.name, err });
        }
        if (result === true) lastRenew = Date.now();
        else if (result === false || Date.now() - lastRenew > this.renewDeadlineMs) {
          this.log.warn('lost leadership', { lease: this.cfg.name, identity: this.cfg.identity });
          leading.abort();
        }
      }
      signal.removeEventListener('abort', stopOnOuter);
      await work;
      if (signal.aborted) await this.release();
    }
  }

  /** Gives the lease up (if still ours) by expiring it now. */
  private async release(): Promise<void> {
    this.held = undefined;
    try {
      const lease = await this.client.get(`${this.path}/${this.cfg.name}`);
      if (lease.spec?.holderIdentity !== this.cfg.identity) return;
      await this.client.update(`${this.path}/${this.cfg.name}`, { ...lease, spec: { ...lease.spec, holderIdentity: '', renewTime: microTime(new Date(0)) } });
    } catch {
      // Best effort: the lease expires on its own.
    }
  }
}
