import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket, { type DecodedPacket, type Packet } from 'dns-packet';
import type { Informer } from '../client/informer.js';
import { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { DnsZone } from './dns-zone.js';

export interface ClusterDnsOptions {
  /** The address to answer on (the node bridge's gateway, reachable from every pod). */
  listen: string;
  port: number;
  domain: string;
  /** The kube-dns Service's cluster IP: what pods' resolv.conf names. */
  serviceIP: string;
  nodeName: string;
}

const SERVICE = 'kube-dns';
const MANAGER = 'cluster-dns.kubicle.io';
const udpLimit = 512;
const maxEdnsLimit = 4096;

/**
 * Cluster DNS: answers for the cluster domain over UDP and TCP from a zone rebuilt (lazily, on the
 * next query) whenever Services or EndpointSlices change. It is reached the Kubernetes way, as the
 * Service kube-system/kube-dns, whose EndpointSlice this component keeps pointing at itself.
 * Names outside the cluster domain are refused: nothing is forwarded off the machine.
 * Malformed queries get FORMERR (or are dropped when not even the header can be read).
 */
export class ClusterDns {
  private zone?: DnsZone;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: ClusterDnsOptions,
    private readonly log: Logger,
  ) {
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = new InformerFactory(this.client, this.log);
    const services = informers.for('/api/v1/services');
    const slices = informers.for('/apis/discovery.k8s.io/v1/endpointslices');
    const stale = () => {
      this.zone = undefined;
    };
    for (const inf of [services, slices]) inf.on({ add: stale, update: stale, delete: stale });
    informers.start(signal);
    await informers.synced();
    const zone = () => {
      this.zone ??= new DnsZone(this.opts.domain, services.list(), slices.list());
      return this.zone;
    };
    const udp = dgram.createSocket('udp4');
    udp.on('message', (msg, from) => {
      const reply = this.handle(msg, zone, true);
      if (reply) udp.send(reply, from.port, from.address);
    });
    udp.on('error', (err) => this.log.warn('dns udp socket error', { err }));
    const tcp = net.createServer((conn) => this.serveTcp(conn, zone));
    await new Promise<void>((resolve, reject) => udp.once('error', reject).bind(this.opts.port, this.opts.listen, () => resolve()));
    await new Promise<void>((resolve, reject) => tcp.once('error', reject).listen(this.opts.port, this.opts.listen, () => resolve()));
    await this.publish(services, slices);
    // Someone deleting or editing the kube-dns Service or this node's slice: put them back.
    const republish = (o: Obj) => {
      if (o.metadata?.namespace !== 'kube-system' || (o.metadata.name !== SERVICE && o.metadata.labels?.['kubernetes.io/service-name'] !== SERVICE)) return;
      void this.publish(services, slices).catch((err) => this.log.warn('kube-dns not republished', { err }));
    };
    for (const inf of [services, slices]) inf.on({ update: republish, delete: republish });
    this.log.info('cluster dns ready', { listen: `${this.opts.listen}:${this.opts.port}`, service: this.opts.serviceIP, domain: this.opts.domain });
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    udp.close();
    tcp.close();
    await informers.stopped();
  }

  /** One query in, one reply out (undefined: drop it). Never throws. */
  private handle(msg: Buffer, zone: () => DnsZone, udp: boolean): Buffer | undefined {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      // Unreadable: answer FORMERR if at least the id is there, echoing it.
      if (msg.length < 12) return undefined;
      return dnsPacket.encode({ type: 'response', id: msg.readUInt16BE(0), flags: 1 });
    }
    if (query.type !== 'query') return undefined;
    const rd = query.flags ? query.flags & dnsPacket.RECURSION_DESIRED : 0;
    const respond = (p: Packet) => dnsPacket.encode({ ...p, type: 'response', id: query.id, questions: query.questions, flags: (p.flags ?? 0) | rd | dnsPacket.AUTHORITATIVE_ANSWER });
    // One question per query, as every resolver sends; anything else is a format error.
    if (query.questions?.length !== 1) return respond({ flags: 1 });
    if (((query.flags ?? 0) >> 11) & 0xf) return respond({ flags: 4 }); // only QUERY: NOTIMP otherwise
    const a = zone().answer(query.questions[0]);
    const reply = respond({ flags: a.rcode, answers: a.answers, authorities: a.authorities });
    if (!udp) return reply;
    const opt = query.additionals?.find((r) => r.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const limit = Math.min(Math.max(opt?.udpPayloadSize ?? udpLimit, udpLimit), maxEdnsLimit);
    return reply.length <= limit ? reply : respond({ flags: a.rcode | dnsPacket.TRUNCATED_RESPONSE });
  }

  /** DNS over TCP: two-byte length, message; several per connection. */
  private serveTcp(conn: net.Socket, zone: () => DnsZone): void {
    let buf = Buffer.alloc(0);
    conn.setTimeout(10_000, () => conn.destroy());
    conn.on('error', () => conn.destroy());
    conn.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const reply = this.handle(buf.subarray(2, 2 + len), zone, false);
        buf = buf.subarray(2 + len);
        if (!reply) return void conn.destroy();
        const framed = Buffer.alloc(2 + reply.length);
        framed.writeUInt16BE(reply.length, 0);
        reply.copy(framed, 2);
        conn.write(framed);
      }
      if (buf.length > 2 + 65535) conn.destroy();
    });
  }

  /** The kube-dns Service (if missing) and this server's EndpointSlice behind it. */
  private async publish(services: Informer, slices: Informer): Promise<void> {
    const ports = [
      { name: 'dns', port: 53, protocol: 'UDP' },
      { name: 'dns-tcp', port: 53, protocol: 'TCP' },
    ];
    if (!services.get(`kube-system/${SERVICE}`)) {
      await this.createIfAbsent(resourcePath({ version: 'v1', plural: 'services', namespace: 'kube-system' }), {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: SERVICE, namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns', 'kubernetes.io/cluster-service': 'true', 'kubernetes.io/name': 'KubeDNS' } },
        spec: { clusterIP: this.opts.serviceIP, ports: ports.map((p) => ({ ...p, targetPort: this.opts.port })) },
      });
    }
    const name = `${SERVICE}-${this.opts.nodeName}`.slice(0, 63).replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '');
    const slice: Obj = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name, namespace: 'kube-system', labels: { 'kubernetes.io/service-name': SERVICE, 'endpointslice.kubernetes.io/managed-by': MANAGER } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [this.opts.listen], conditions: { ready: true, serving: true, terminating: false }, nodeName: this.opts.nodeName }],
      ports: ports.map((p) => ({ ...p, port: this.opts.port })),
    };
    const base = resourcePath({ group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespace: 'kube-system' });
    const have = slices.get(`kube-system/${name}`);
    if (!have) await this.createIfAbsent(base, slice);
    else if (JSON.stringify([have.endpoints, have.ports]) !== JSON.stringify([slice.endpoints, slice.ports])) {
      await this.client.update(`${base}/${name}`, { ...have, endpoints: slice.endpoints, ports: slice.ports });
    }
  }

  private async createIfAbsent(path: string, obj: Obj): Promise<void> {
    try {
      await this.client.create(path, obj);
    } catch (err) {
      if (!isCode(err, 'AlreadyExists')) throw err;
    }
  }
}
