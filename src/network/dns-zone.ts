import type { Answer, Question } from 'dns-packet';
import { parseIPv4 } from '../api/ipv4.js';
import type { Obj } from '../client/kube-client.js';

/**
 * The cluster's DNS records, as Kubernetes' DNS specification lays them out (the schema CoreDNS's
 * kubernetes plugin serves), built from Services and EndpointSlices:
 *   <svc>.<ns>.svc.<domain>            A: the cluster IP; headless: each ready endpoint's address;
 *                                       ExternalName: a CNAME
 *   <host>.<svc>.<ns>.svc.<domain>     A: a headless endpoint (its hostname, else its dashed address)
 *   _<port>._<proto>.<svc>.<ns>.svc…   SRV per named port (headless: one per endpoint)
 *   <a-b-c-d>.<ns>.pod.<domain>        A: a.b.c.d
 *   reverse names                      PTR for cluster IPs and headless endpoints
 * Names are matched without regard to case.
 */
export interface ZoneAnswer {
  /** 0 NOERROR, 3 NXDOMAIN, 5 REFUSED (a name this server is not the authority for). */
  rcode: 0 | 3 | 5;
  answers: Answer[];
  authorities: Answer[];
}

type RecordData = { type: 'A' | 'CNAME' | 'PTR'; data: string } | { type: 'SRV'; data: { priority: number; weight: number; port: number; target: string } };

const ttl = 5;

export class DnsZone {
  private readonly names = new Map<string, RecordData[]>();

  constructor(
    readonly domain: string,
    services: Obj[],
    slices: Obj[],
  ) {
    const slicesOf = new Map<string, Obj[]>();
    for (const s of slices) {
      const owner = s.metadata?.labels?.['kubernetes.io/service-name'];
      if (owner && s.addressType === 'IPv4') slicesOf.set(`${s.metadata.namespace}/${owner}`, [...(slicesOf.get(`${s.metadata.namespace}/${owner}`) ?? []), s]);
    }
    for (const svc of services) this.addService(svc, slicesOf.get(`${svc.metadata.namespace}/${svc.metadata.name}`) ?? []);
  }

  private add(name: string, rec: RecordData): void {
    const key = name.toLowerCase();
    const list = this.names.get(key) ?? [];
    if (!list.some((r) => r.type === rec.type && JSON.stringify(r.data) === JSON.stringify(rec.data))) list.push(rec);
    this.names.set(key, list);
    // Every name above a record exists too (as an empty non-terminal), so it answers NODATA, not NXDOMAIN.
    for (let dot = key.indexOf('.'); dot >= 0 && key.length - dot - 1 > this.domain.length; dot = key.indexOf('.', dot + 1)) {
      const parent = key.slice(dot + 1);
      if (!this.names.has(parent)) this.names.set(parent, []);
    }
  }

  private addService(svc: Obj, slices: Obj[]): void {
    const spec = svc.spec ?? {};
    const base = `${svc.metadata.name}.${svc.metadata.namespace}.svc.${this.domain}`;
    if (spec.type === 'ExternalName') {
      if (spec.externalName) this.add(base, { type: 'CNAME', data: String(spec.externalName).replace(/\.$/, '') });
      return;
    }
    const ports = (spec.ports ?? []) as Obj[];
    if (spec.clusterIP && spec.clusterIP !== 'None') {
      this.add(base, { type: 'A', data: spec.clusterIP });
      this.add(reverseName(spec.clusterIP), { type: 'PTR', data: base });
      for (const p of ports) {
        if (p.name) this.add(`_${p.name}._${String(p.protocol ?? 'TCP').toLowerCase()}.${base}`, { type: 'SRV', data: { priority: 0, weight: 100, port: p.port, target: base } });
      }
      return;
    }
    // Headless: the endpoints themselves, ready ones unless the Service publishes all.
    this.names.set(base.toLowerCase(), this.names.get(base.toLowerCase()) ?? []);
    for (const slice of slices) {
      for (const ep of (slice.endpoints ?? []) as Obj[]) {
        const ip = ep.addresses?.[0];
        if (parseIPv4(ip) === undefined || (ep.conditions?.ready === false && !spec.publishNotReadyAddresses)) continue;
        const host = `${ep.hostname ?? ip.replaceAll('.', '-')}.${base}`;
        this.add(base, { type: 'A', data: ip });
        this.add(host, { type: 'A', data: ip });
        this.add(reverseName(ip), { type: 'PTR', data: host });
        for (const p of (slice.ports ?? []) as Obj[]) {
          if (p.name && p.port) this.add(`_${p.name}._${String(p.protocol ?? 'TCP').toLowerCase()}.${base}`, { type: 'SRV', data: { priority: 0, weight: 100, port: p.port, target: host } });
        }
      }
    }
  }

  /** Answers one question. */
  answer(q: Question): ZoneAnswer {
    const name = q.name.replace(/\.$/, '');
    const key = name.toLowerCase();
    const inZone = key === this.domain || key.endsWith(`.${this.domain}`);
    if (!inZone && !key.endsWith('.in-addr.arpa')) return { rcode: 5, answers: [], authorities: [] };
    if (key === this.domain) {
      const soa = q.type === 'SOA' || q.type === ('ANY' as string);
      return { rcode: 0, answers: soa ? [this.soa()] : [], authorities: soa ? [] : [this.soa()] };
    }
    let records = this.names.get(key);
    if (!records && inZone) records = podRecord(key, this.domain);
    if (!records) return { rcode: inZone || this.hasReverse(key) ? 3 : 5, answers: [], authorities: inZone ? [this.soa()] : [] };
    const out: Answer[] = [];
    const cname = records.find((r) => r.type === 'CNAME');
    const matching = cname && q.type !== 'CNAME' ? [cname] : records.filter((r) => q.type === ('ANY' as string) || r.type === q.type);
    for (const r of matching) out.push({ name, type: r.type, class: 'IN', ttl, data: r.data } as Answer);
    return { rcode: 0, answers: out, authorities: out.length ? [] : [this.soa()] };
  }

  /** Whether any reverse record lies in the same /24 (a reverse zone this server answers for). */
  private hasReverse(key: string): boolean {
    const zone = key.split('.').slice(1).join('.');
    for (const k of this.names.keys()) if (k.endsWith(`.${zone}`)) return true;
    return false;
  }

  private soa(): Answer {
    return {
      name: this.domain,
      type: 'SOA',
      class: 'IN',
      ttl,
      data: { mname: `ns.dns.${this.domain}`, rname: `hostmaster.${this.domain}`, serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: ttl },
    };
  }
}

/** `a-b-c-d.<ns>.pod.<domain>`: the address spelled in the name (upstream's "pods insecure"). */
function podRecord(key: string, domain: string): RecordData[] | undefined {
  const parts = key.slice(0, -(domain.length + 1)).split('.');
  if (parts.length !== 3 || parts[2] !== 'pod') return undefined;
  const ip = parts[0].replaceAll('-', '.');
  return parseIPv4(ip) === undefined ? undefined : [{ type: 'A', data: ip }];
}

function reverseName(ip: string): string {
  return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
}
