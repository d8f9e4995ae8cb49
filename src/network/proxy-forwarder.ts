import net from 'node:net';
import type { Logger } from '../observe/log.js';

/** One load balancer address and port forwarded in user space, with a PROXY protocol header. */
export interface ProxyListener {
  ip: string;
  port: number;
  version: 'v1' | 'v2';
  /** The backends at the moment a connection arrives (ready endpoints; Local: this node's). */
  endpoints: () => { ip: string; port: number }[];
}

const v2Signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/**
 * The PROXY protocol header (HAProxy's specification, versions 1 and 2) telling the backend who
 * the client was and which address it dialled, for TCP over IPv4.
 */
export function proxyHeader(version: 'v1' | 'v2', src: { ip: string; port: number }, dst: { ip: string; port: number }): Buffer {
  if (version === 'v1') return Buffer.from(`PROXY TCP4 ${src.ip} ${dst.ip} ${src.port} ${dst.port}\r\n`, 'latin1');
  const b = Buffer.alloc(16 + 12);
  v2Signature.copy(b, 0);
  b[12] = 0x21; // version 2, PROXY command
  b[13] = 0x11; // AF_INET, STREAM
  b.writeUInt16BE(12, 14);
  const octets = (ip: string) => ip.split('.').map(Number);
  Buffer.from(octets(src.ip)).copy(b, 16);
  Buffer.from(octets(dst.ip)).copy(b, 20);
  b.writeUInt16BE(src.port, 24);
  b.writeUInt16BE(dst.port, 26);
  return b;
}

/**
 * The user-space half of the load balancer: a TCP listener per address and port of the Services
 * that ask for the PROXY protocol (everything else is forwarded by the kernel, see service-rules).
 * Each connection goes to the next backend in turn, preceded by the header; without a backend
 * the client gets a reset at once, like the kernel path's refusal.
 */
export class ProxyForwarder {
  private readonly servers = new Map<string, { server: net.Server; listener: ProxyListener; next: number }>();

  constructor(private readonly log: Logger) {}

  /** Opens and closes listeners so exactly these are served; a listener that cannot bind is logged and retried on the next sync. */
  async sync(listeners: ProxyListener[]): Promise<void> {
    const wanted = new Map(listeners.map((l) => [`${l.ip}:${l.port}`, l]));
    for (const [k, s] of this.servers) {
      if (!wanted.has(k)) {
        this.servers.delete(k);
        s.server.close();
      }
    }
    await Promise.all(
      [...wanted].map(async ([k, l]) => {
        const existing = this.servers.get(k);
        if (existing) {
          existing.listener = l;
          return;
        }
        // Half-open: a client that is done sending still gets the rest of the answer.
        const entry = { server: net.createServer({ allowHalfOpen: true }, (c) => this.forward(entry, c)), listener: l, next: 0 };
        this.servers.set(k, entry);
        await new Promise<void>((resolve) => {
          entry.server.once('error', (err) => {
            this.log.warn('load balancer listener failed', { address: k, err });
            this.servers.delete(k);
            resolve();
          });
          entry.server.listen(l.port, l.ip, () => resolve());
        });
      }),
    );
  }

  close(): void {
    for (const s of this.servers.values()) s.server.close();
    this.servers.clear();
  }

  private forward(entry: { listener: ProxyListener; next: number }, client: net.Socket): void {
    const eps = entry.listener.endpoints();
    client.on('error', () => {});
    if (!eps.length || client.remoteAddress === undefined) {
      client.resetAndDestroy();
      return;
    }
    const ep = eps[entry.next++ % eps.length];
    const backend = net.connect({ host: ep.ip, port: ep.port, allowHalfOpen: true });
    backend.setNoDelay(true);
    client.setNoDelay(true);
    backend.write(proxyHeader(entry.listener.version, { ip: client.remoteAddress.replace(/^::ffff:/, ''), port: client.remotePort ?? 0 }, { ip: entry.listener.ip, port: entry.listener.port }));
    client.pipe(backend);
    backend.pipe(client);
    backend.on('error', () => client.resetAndDestroy());
    client.on('close', () => backend.destroy());
    backend.on('close', () => client.destroy());
  }
}
