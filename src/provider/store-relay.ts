import { chmod, rm } from 'node:fs/promises';
import http2 from 'node:http2';
import type { Logger } from '../observe/log.js';

/**
 * Carries a cluster's connections to the shared store (etcd's gRPC over cleartext HTTP/2): a
 * control plane's network reaches no host address (ADR 0012), so each gets a unix socket in its
 * run directory. Calls pass stream by stream, unchanged, if their method is one a store needs;
 * any other (compaction, defragmentation, snapshots, membership, user admin) is refused here
 * with PERMISSION_DENIED, since etcd lets any user compact the one history all tenants share.
 * The rest is etcd's own auth: the relay gives reach, the cluster's etcd user gives rights
 * (ADR 0014).
 */
const allowed = new Set([
  '/etcdserverpb.KV/Range',
  '/etcdserverpb.KV/Put',
  '/etcdserverpb.KV/DeleteRange',
  '/etcdserverpb.KV/Txn',
  '/etcdserverpb.Watch/Watch',
  '/etcdserverpb.Lease/LeaseGrant',
  '/etcdserverpb.Lease/LeaseRevoke',
  '/etcdserverpb.Lease/LeaseKeepAlive',
  '/etcdserverpb.Lease/LeaseTimeToLive',
  '/etcdserverpb.Auth/Authenticate',
]);
const hopHeaders = new Set([':method', ':path', ':authority', ':scheme', ':status', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

export class StoreRelay {
  private readonly servers = new Map<string, { server: http2.Http2Server; sessions: Set<http2.ServerHttp2Session> }>();

  constructor(
    private readonly target: { host: string; port: number },
    private readonly log: Logger,
  ) {}

  /** Relays `socketPath` (a stale one is replaced), usable by the control plane's user. Idempotent per uid. */
  async open(uid: string, socketPath: string): Promise<void> {
    if (this.servers.has(uid)) return;
    await rm(socketPath, { force: true });
    const sessions = new Set<http2.ServerHttp2Session>();
    const server = http2.createServer();
    server.on('session', (session) => {
      sessions.add(session);
      // One upstream connection per inbound one: a cluster's calls never share a session (nor its auth token) with another's.
      const upstream = http2.connect(`http://${this.target.host}:${this.target.port}`);
      upstream.on('error', (err) => {
        this.log.debug('store relay upstream error', { cluster: uid, err });
        session.destroy();
      });
      session.on('close', () => {
        sessions.delete(session);
        upstream.close();
      });
      session.on('error', () => upstream.destroy());
      session.on('stream', (stream, headers) => this.relay(uid, stream, headers, upstream));
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(socketPath, resolve));
    server.on('error', (err) => this.log.warn('store relay error', { cluster: uid, err }));
    await chmod(socketPath, 0o666);
    this.servers.set(uid, { server, sessions });
  }

  private relay(uid: string, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, upstream: http2.ClientHttp2Session): void {
    const method = String(headers[':path'] ?? '');
    if (!allowed.has(method)) {
      this.log.warn('store call refused', { cluster: uid, method });
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': `etcdserver: permission denied: ${method} is not available to tenant clusters` }, { endStream: true });
      return;
    }
    const forward = Object.fromEntries(Object.entries(headers).filter(([k]) => !hopHeaders.has(k)));
    const call = upstream.request({ ':method': 'POST', ':path': method, ...forward });
    let trailers: http2.IncomingHttpHeaders | undefined;
    call.on('trailers', (t) => {
      trailers = t;
    });
    call.on('response', (h, flags) => {
      const reply = { ':status': h[':status'] ?? 200, ...Object.fromEntries(Object.entries(h).filter(([k]) => !hopHeaders.has(k))) };
      // A trailers-only answer (an error at once) ends with its headers.
      if ((flags ?? 0) & http2.constants.NGHTTP2_FLAG_END_STREAM) return void stream.respond(reply, { endStream: true });
      stream.respond(reply, { waitForTrailers: true });
      call.pipe(stream);
    });
    stream.on('wantTrailers', () => stream.sendTrailers(Object.fromEntries(Object.entries(trailers ?? { 'grpc-status': '0' }).filter(([k]) => !hopHeaders.has(k)))));
    stream.pipe(call);
    const cancel = () => {
      if (!call.closed) call.close(http2.constants.NGHTTP2_CANCEL);
    };
    stream.on('close', cancel);
    stream.on('error', cancel);
    call.on('error', () => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
  }

  /** Stops relaying for the cluster and cuts its open connections. Idempotent. */
  async close(uid: string): Promise<void> {
    const r = this.servers.get(uid);
    if (!r) return;
    this.servers.delete(uid);
    for (const s of r.sessions) s.destroy();
    await new Promise((resolve) => r.server.close(resolve));
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.servers.keys()].map((uid) => this.close(uid)));
  }
}
