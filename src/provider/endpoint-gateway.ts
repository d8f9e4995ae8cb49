import net from 'node:net';
import { KubicleError } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * The provider's side of every cluster endpoint (DESIGN §2.4): it holds the listening socket of
 * each cluster's address and carries each connection, as bytes, to the control plane's unix
 * socket. TLS runs end to end between the client and the tenant's API server, so the provider
 * never sees a tenant's requests. Because the provider owns the socket, a control plane may be
 * stopped while idle: a connection arriving meanwhile waits (paused, its bytes kept by the
 * kernel) while `resolve` wakes the control plane, then is carried on with nothing lost. A
 * control plane of several replicas gives several sockets: a connection goes to the first that
 * accepts it, so one replica's loss costs no client more than the connections it held.
 */
export interface EndpointBackend {
  /**
   * The control plane's socket paths once it serves, in order of preference, waking it first if
   * it sleeps. May block for the wake; rejects if the cluster cannot serve (stopped, failed): the
   * connection is then closed.
   */
  resolve(): Promise<string[]>;
}

export interface EndpointActivity {
  /** Connections open now. */
  open: number;
  /** When the last connection closed, or the endpoint was opened (ms since the epoch). */
  idleSince: number;
  /** Connections carried since the endpoint opened. */
  total: number;
}

interface Endpoint {
  server: net.Server;
  activity: EndpointActivity;
  sockets: Set<net.Socket>;
}

export class EndpointGateway {
  private readonly endpoints = new Map<string, Endpoint>();

  constructor(private readonly log: Logger) {}

  /** Opens `key`'s endpoint on address:port. Idempotent for the same key; rejects if the address is taken. */
  async open(key: string, address: string, port: number, backend: EndpointBackend): Promise<void> {
    if (this.endpoints.has(key)) return;
    const ep: Endpoint = { server: net.createServer({ pauseOnConnect: true }), activity: { open: 0, idleSince: Date.now(), total: 0 }, sockets: new Set() };
    ep.server.on('connection', (client) => this.carry(key, ep, client, backend));
    await new Promise<void>((resolve, reject) => {
      ep.server.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? new KubicleError('AlreadyExists', `endpoint ${address}:${port} is already in use on this host`) : err),
      );
      ep.server.listen(port, address, () => resolve());
    });
    ep.server.on('error', (err) => this.log.error('endpoint failed', { key, err }));
    this.endpoints.set(key, ep);
    this.log.info('endpoint open', { key, address, port });
  }

  /** Closes the endpoint and cuts its connections. Idempotent. */
  async close(key: string): Promise<void> {
    const ep = this.endpoints.get(key);
    if (!ep) return;
    this.endpoints.delete(key);
    for (const s of ep.sockets) s.destroy();
    await new Promise<void>((resolve) => ep.server.close(() => resolve()));
    this.log.info('endpoint closed', { key });
  }

  /** Cuts the connections carried for `key` (the control plane behind them is going away). */
  disconnect(key: string): void {
    for (const s of this.endpoints.get(key)?.sockets ?? []) s.destroy();
  }

  activity(key: string): EndpointActivity | undefined {
    const a = this.endpoints.get(key)?.activity;
    return a && { ...a };
  }

  /** Where `key`'s endpoint listens (the port chosen when opened with 0). */
  address(key: string): net.AddressInfo | undefined {
    return this.endpoints.get(key)?.server.address() as net.AddressInfo | undefined;
  }

  keys(): string[] {
    return [...this.endpoints.keys()];
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.keys().map((k) => this.close(k)));
  }

  private carry(key: string, ep: Endpoint, client: net.Socket, backend: EndpointBackend): void {
    ep.activity.open++;
    ep.activity.total++;
    ep.sockets.add(client);
    let upstream: net.Socket | undefined;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      ep.sockets.delete(client);
      ep.activity.open--;
      ep.activity.idleSince = Date.now();
      client.destroy();
      upstream?.destroy();
    };
    client.on('error', finish);
    client.on('close', finish);
    // Each socket in turn until one accepts; once carrying, a failure ends the connection.
    const attempt = (sockets: string[], i: number) => {
      if (done) return;
      const u = net.connect(sockets[i]);
      upstream = u;
      ep.sockets.add(u);
      let connected = false;
      u.on('error', (err) => {
        if (!connected && i + 1 < sockets.length && !done) {
          ep.sockets.delete(u);
          this.log.info('control plane replica refused a connection; trying the next', { key, replica: i, err });
          return attempt(sockets, i + 1);
        }
        this.log.warn('control plane connection failed', { key, err });
        finish();
      });
      u.on('close', () => {
        ep.sockets.delete(u);
        if (connected || i + 1 >= sockets.length) finish();
      });
      u.on('connect', () => {
        connected = true;
        client.pipe(u);
        u.pipe(client);
        client.resume();
      });
    };
    backend.resolve().then(
      (sockets) => attempt(sockets, 0),
      (err) => {
        this.log.info('endpoint refused a connection', { key, reason: (err as Error).message });
        finish();
      },
    );
  }
}
