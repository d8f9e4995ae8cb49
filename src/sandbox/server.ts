import { timingSafeEqual } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import type { ContainerSpec, HostInfo, ImageSummary, LogOptions, NetworkSpec, RegistryAuth, SandboxSpec, SandboxUsage, Usage } from './api/types.js';
import { parseLabelSelector, readJson, refuseUpgrade, send, sendError } from './api/wire.js';
import type { HostDirs } from './host-dirs.js';
import type { Image, ImageStore } from './images/image-store.js';
import { parseReference } from './images/reference.js';
import type { PodNetworks } from './net/pod-networks.js';
import type { SandboxRuntime } from './runtime.js';
import { StreamServer } from './stream-server.js';


/**
 * The Sandbox API v1 over HTTP/JSON: on a unix socket (mode 0600, for this host's kubelet) and,
 * when a token is given, on TCP with `Authorization: Bearer`. It maps routes onto the runtimes and
 * the image store and nothing else; errors go out as `{code, message}` with a matching status.
 */
export class SandboxServer {
  private readonly servers: http.Server[] = [];
  /**
   * Usage of sandboxes without a process, read once after their last process ended: a stopped
   * cgroup's counters no longer move, and reading them (memory.stat above all) for a thousand
   * sleeping control planes at every metering sample cost the agent a tenth of a core.
   */
  private readonly settled = new Map<string, Usage>();
  private readonly streams: StreamServer;

  constructor(
    private readonly runtimes: Map<string, SandboxRuntime>,
    private readonly images: ImageStore,
    private readonly networks: PodNetworks,
    private readonly log: Logger,
    private readonly hostDirs: HostDirs,
    private readonly token?: string,
  ) {
    this.streams = new StreamServer((id) => this.runtimeOf(id), log);
  }

  /** Which runtime holds a sandbox, found by asking each (sandboxes are few per host). */
  private async runtimeOf(id: string): Promise<SandboxRuntime> {
    for (const rt of this.runtimes.values()) {
      try {
        await rt.status(id);
        return rt;
      } catch (err) {
        if (!(err instanceof KubicleError && err.code === 'NotFound')) throw err;
      }
    }
    throw new KubicleError('NotFound', `sandbox ${id} not found`);
  }

  async listen(socketPath: string, tcp?: { host: string; port: number }): Promise<void> {
    await rm(socketPath, { force: true });
    const local = http.createServer((req, res) => this.handle(req, res, true));
    local.on('upgrade', (req, socket, head) => void this.upgrade(req, socket, head, true));
    await new Promise<void>((resolve, reject) => local.once('error', reject).listen(socketPath, resolve));
    await chmod(socketPath, 0o600);
    this.servers.push(local);
    if (tcp && this.token) {
      const remote = http.createServer((req, res) => this.handle(req, res, false));
      remote.on('upgrade', (req, socket, head) => void this.upgrade(req, socket, head, false));
      await new Promise<void>((resolve, reject) => remote.once('error', reject).listen(tcp.port, tcp.host, resolve));
      this.servers.push(remote);
    }
  }

  close(): void {
    for (const s of this.servers) {
      s.close();
      s.closeAllConnections();
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, trusted: boolean): Promise<void> {
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      if (!trusted && !this.authorized(req)) throw new KubicleError('Unauthorized', 'a valid bearer token is required');
      const url = new URL(req.url ?? '/', 'http://agent');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'v1') throw new KubicleError('NotFound', `no such API: ${url.pathname}`);
      // Route keys put ':' where a sandbox id or a container or volume name stands.
      const route = `${req.method} ${parts
        .slice(1)
        .map((p, i) => ((parts[1] === 'sandboxes' || parts[1] === 'networks') && i % 2 === 1 ? ':' : p))
        .join('/')}`;
      const q = url.searchParams;
      const grace = () => Math.max(0, Math.min(3600, Number(q.get('grace') ?? 30) || 0));
      const [, , sandbox, , name] = parts;
      switch (route) {
        case 'GET version':
          return send(res, 200, { version: 'v1', runtimes: [...this.runtimes.keys()] });
        case 'GET host': {
          // What the machine has, not what is placed on it: the provider keeps account of that.
          const info: HostInfo = {
            hostname: os.hostname(),
            capacity: { cpuMillis: os.availableParallelism() * 1000, memoryBytes: os.totalmem() },
            availableMemoryBytes: os.freemem(),
            runtimes: [...this.runtimes.keys()],
          };
          return send(res, 200, info);
        }
        case 'DELETE host-dirs':
          await this.hostDirs.remove(q.get('path') ?? '');
          return send(res, 200, {});
        case 'GET images':
          return send(res, 200, (await this.images.list()).map(summary));
        case 'GET images/resolve': {
          const img = await this.images.find(q.get('ref') ?? '');
          if (!img) throw new KubicleError('NotFound', `image ${q.get('ref')} is not present on this host`);
          return send(res, 200, summary(img));
        }
        case 'POST images/pull': {
          const body = (await readJson(req)) as { image?: string; auth?: RegistryAuth[] };
          if (typeof body.image !== 'string') throw new KubicleError('Invalid', 'image is required');
          const ref = parseReference(body.image);
          const creds = (body.auth ?? []).find((a) => a.registry === ref.registry || (ref.registry === 'docker.io' && /(^|\.)docker\.io$/.test(a.registry)));
          return send(res, 200, summary(await this.images.pull(body.image, creds)));
        }
        case 'GET networks':
          return send(res, 200, this.networks.list());
        case 'PUT networks/:': {
          const body = (await readJson(req)) as Partial<NetworkSpec>;
          if (typeof body.cidr !== 'string') throw new KubicleError('Invalid', 'cidr is required');
          return send(res, 200, await this.networks.define(sandbox, body.cidr));
        }
        case 'DELETE networks/:':
          await this.networks.remove(sandbox);
          return send(res, 200, {});
        case 'GET usage': {
          // Every sandbox's usage in one call: what a meter samples, without a call per sandbox.
          const out: SandboxUsage[] = [];
          const listed = new Set<string>();
          for (const rt of this.runtimes.values()) {
            for (const sb of await rt.list()) {
              // By id and creation: a sandbox made anew under the same id has a cgroup of its own.
              const key = `${sb.id}@${sb.createdAt}`;
              listed.add(key);
              const running = sb.containers.some((c) => c.state === 'running');
              if (running) this.settled.delete(key);
              const usage = this.settled.get(key) ?? (await rt.usage(sb.id).catch(() => undefined));
              if (!usage) continue;
              if (!running) this.settled.set(key, usage);
              out.push({ id: sb.id, labels: sb.labels, running, usage });
            }
          }
          for (const key of this.settled.keys()) if (!listed.has(key)) this.settled.delete(key);
          return send(res, 200, out);
        }
        case 'GET sandboxes': {
          const labels = parseLabelSelector(q.get('labelSelector'));
          const all = await Promise.all([...this.runtimes.values()].map((rt) => rt.list(labels)));
          return send(res, 200, all.flat());
        }
        case 'POST sandboxes': {
          const body = (await readJson(req)) as { spec?: SandboxSpec; runtime?: string };
          const rt = this.runtimes.get(body.runtime ?? 'runc');
          if (!rt) throw new KubicleError('Invalid', `unknown runtime ${JSON.stringify(body.runtime)}; this host has ${[...this.runtimes.keys()].join(', ')}`);
          if (!body.spec || typeof body.spec.id !== 'string') throw new KubicleError('Invalid', 'spec.id is required');
          return send(res, 201, await rt.createSandbox(body.spec));
        }
        case 'GET sandboxes/:':
          return send(res, 200, await (await this.runtimeOf(sandbox)).status(sandbox));
        case 'DELETE sandboxes/:': {
          const rt = await this.runtimeOf(sandbox).catch(() => undefined);
          if (rt) await rt.removeSandbox(sandbox, grace());
          return send(res, 200, {});
        }
        case 'GET sandboxes/:/usage':
          return send(res, 200, await (await this.runtimeOf(sandbox)).usage(sandbox));
        case 'POST sandboxes/:/containers': {
          const spec = (await readJson(req)) as ContainerSpec;
          if (typeof spec.image !== 'string' || typeof spec.name !== 'string') throw new KubicleError('Invalid', 'name and image are required');
          const rt = await this.runtimeOf(sandbox);
          const img = await this.images.find(spec.image);
          if (!img) throw new KubicleError('NotFound', `image ${spec.image} is not present on this host; pull it first`);
          await this.images.touch(img.id);
          return send(res, 201, await rt.startContainer(sandbox, spec, img));
        }
        case 'POST sandboxes/:/containers/:/stop':
          await (await this.runtimeOf(sandbox)).stopContainer(sandbox, name, grace());
          return send(res, 200, {});
        case 'POST sandboxes/:/containers/:/exec': {
          const body = (await readJson(req)) as { command?: string[]; timeoutMs?: number };
          if (!Array.isArray(body.command) || !body.command.length) throw new KubicleError('Invalid', 'command is required');
          return send(res, 200, await (await this.runtimeOf(sandbox)).exec(sandbox, name, body.command, Math.min(600_000, body.timeoutMs ?? 10_000)));
        }
        case 'GET sandboxes/:/containers/:/usage':
          return send(res, 200, await (await this.runtimeOf(sandbox)).usage(sandbox, name));
        case 'PUT sandboxes/:/volumes/:/files': {
          const body = (await readJson(req)) as { files?: [] };
          await (await this.runtimeOf(sandbox)).updateFiles(sandbox, name, body.files ?? []);
          return send(res, 200, {});
        }
        case 'GET sandboxes/:/containers/:/logs': {
          const num = (k: string) => (q.has(k) ? Number(q.get(k)) : undefined);
          const opts: LogOptions = {
            follow: q.get('follow') === 'true',
            previous: q.get('previous') === 'true',
            timestamps: q.get('timestamps') === 'true',
            tailLines: num('tailLines'),
            limitBytes: num('limitBytes'),
            sinceTime: q.get('sinceTime') ?? undefined,
          };
          const stream = await (await this.runtimeOf(sandbox)).logs(sandbox, name, opts, abort.signal);
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
          res.flushHeaders();
          await pipeline(stream, res).catch(() => {});
          return;
        }
        default:
          throw new KubicleError('NotFound', `no route for ${req.method} ${url.pathname}`);
      }
    } catch (err) {
      if (sendError(res, err).code === 'Internal') this.log.error('sandbox API error', { url: req.url, err });
    }
  }

  /** Exec and port-forward streams (api/streams.ts); a refusal is an ordinary JSON error response. */
  private async upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, trusted: boolean): Promise<void> {
    socket.on('error', () => {});
    try {
      if (!trusted && !this.authorized(req)) throw new KubicleError('Unauthorized', 'a valid bearer token is required');
      const url = new URL(req.url ?? '/', 'http://agent');
      const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
      if (parts[0] !== 'v1' || parts[1] !== 'sandboxes') throw new KubicleError('NotFound', `no stream route for ${url.pathname}`);
      const session = await this.streams.open(req, parts.slice(1), url.searchParams);
      this.streams.upgrade(req, socket, head, session);
    } catch (err) {
      if (refuseUpgrade(socket, err).code === 'Internal') this.log.error('sandbox stream error', { url: req.url, err });
    }
  }

  private authorized(req: http.IncomingMessage): boolean {
    const got = Buffer.from(String(req.headers.authorization ?? ''));
    const want = Buffer.from(`Bearer ${this.token}`);
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

function summary(i: Image): ImageSummary {
  return { id: i.id, digest: i.digest, references: i.references, size: i.size };
}

