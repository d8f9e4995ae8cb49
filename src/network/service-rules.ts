import { createHash } from 'node:crypto';
import { type Cidr, cidrContains, formatIPv4, parseCidr, parseIPv4 } from '../api/ipv4.js';
import type { Obj } from '../client/kube-client.js';

/**
 * Services as one nftables table, the way kube-proxy's nftables mode lays them out: a verdict map
 * from (cluster IP, protocol, port) and one from (protocol, node port) to a chain per service port,
 * which picks an endpoint at random (or the client's last one under ClientIP affinity) and DNATs to
 * it. Service ports with no usable endpoint are in a set whose new connections are refused at once.
 *
 * The table is rendered whole; TableSync swaps it in one nft transaction, so the kernel never
 * holds half a rule set, and ClientIP affinity survives the swap.
 */
export interface ServiceRulesOptions {
  /** nft table name, one per cluster on a host. */
  table: string;
  /** The node's pod bridge: traffic from it is this cluster's pods. */
  bridge: string;
  /** This cluster's pod range: traffic from elsewhere to a node port is masqueraded (unless Local). */
  podCidr: string;
  /** The bridge's own address: the one host address pods may open connections to. */
  gateway: string;
  /** The node these rules are for: externalTrafficPolicy Local keeps to its endpoints. */
  nodeName: string;
  /**
   * The platform's load balancer pool. Only status addresses inside it are forwarded: status is
   * written through the API, and an address outside the pool (127.0.0.1, another cluster's)
   * would otherwise capture the host's own traffic to it.
   */
  loadBalancerPool?: string;
  /**
   * The cluster is one of several tenants' on this host, on its own isolated network: only its
   * pods' traffic to cluster IPs is served — no node ports, no load-balancer addresses, no host
   * traffic to cluster IPs (every tenant has the same service range) — and only endpoints inside
   * podCidr are used, whatever a tenant writes into its EndpointSlices.
   */
  isolated?: boolean;
}

export interface ServicePortRule {
  key: string;
  clusterIP?: string;
  protocol: string;
  port: number;
  nodePort?: number;
  /** LoadBalancer addresses this node forwards in the kernel (status ipMode VIP; Proxy ones go through the load balancer). */
  loadBalancerIPs: string[];
  /** loadBalancerSourceRanges: when set, only these clients may use the load balancer addresses. */
  sourceRanges?: string[];
  affinitySeconds?: number;
  externalLocal: boolean;
  endpoints: { ip: string; port: number; local: boolean }[];
}

const masqueradeMark = '0x4000';
const protocols: Record<string, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

/**
 * The service ports to program, from Services and their EndpointSlices: ready endpoints, or when
 * none is ready, serving ones that are terminating (upstream's graceful termination). Headless and
 * ExternalName Services have none.
 */
export function servicePortRules(services: Obj[], slices: Obj[], nodeName: string, loadBalancerPool?: string): ServicePortRule[] {
  const pool = parseCidr(loadBalancerPool);
  const slicesOf = new Map<string, Obj[]>();
  for (const s of slices) {
    const owner = s.metadata?.labels?.['kubernetes.io/service-name'];
    if (!owner || s.addressType !== 'IPv4') continue;
    const k = `${s.metadata.namespace}/${owner}`;
    slicesOf.set(k, [...(slicesOf.get(k) ?? []), s]);
  }
  const out: ServicePortRule[] = [];
  for (const svc of services) {
    const spec = svc.spec ?? {};
    if (spec.type === 'ExternalName' || !spec.clusterIP || spec.clusterIP === 'None') continue;
    const svcKey = `${svc.metadata.namespace}/${svc.metadata.name}`;
    for (const sp of (spec.ports ?? []) as Obj[]) {
      const protocol = protocols[sp.protocol ?? 'TCP'];
      if (!protocol) continue;
      const collect = (want: (c: Obj) => boolean) => {
        const eps: ServicePortRule['endpoints'] = [];
        const seen = new Set<string>();
        for (const slice of slicesOf.get(svcKey) ?? []) {
          const port = ((slice.ports ?? []) as Obj[]).find((p) => (p.name ?? '') === (sp.name ?? '') && (p.protocol ?? 'TCP') === (sp.protocol ?? 'TCP'));
          if (!port?.port) continue;
          for (const ep of (slice.endpoints ?? []) as Obj[]) {
            const ip = ep.addresses?.[0];
            if (!ip || !want(ep.conditions ?? {}) || seen.has(`${ip}:${port.port}`)) continue;
            seen.add(`${ip}:${port.port}`);
            eps.push({ ip, port: port.port, local: ep.nodeName === nodeName });
          }
        }
        return eps;
      };
      let endpoints = collect((c) => c.ready !== false);
      if (!endpoints.length) endpoints = collect((c) => c.serving === true && c.terminating === true);
      out.push({
        key: `${svcKey}:${sp.name ?? ''}:${protocol}`,
        clusterIP: spec.clusterIP,
        protocol,
        port: sp.port,
        nodePort: spec.type === 'NodePort' || spec.type === 'LoadBalancer' ? sp.nodePort : undefined,
        loadBalancerIPs: spec.type === 'LoadBalancer' && pool ? loadBalancerIPs(svc, pool) : [],
        sourceRanges: spec.type === 'LoadBalancer' && spec.loadBalancerSourceRanges?.length ? sourceRanges(spec.loadBalancerSourceRanges) : undefined,
        affinitySeconds: spec.sessionAffinity === 'ClientIP' ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? 10800) : undefined,
        externalLocal: spec.externalTrafficPolicy === 'Local',
        endpoints: endpoints.sort((a, b) => a.ip.localeCompare(b.ip) || a.port - b.port),
      });
    }
  }
  return out.sort((a, b) => a.key.localeCompare(b.key));
}

/** The Service's load balancer addresses that the kernel forwards (ipMode VIP, the default). */
function loadBalancerIPs(svc: Obj, pool: Cidr): string[] {
  const ingress = (svc.status?.loadBalancer?.ingress ?? []) as Obj[];
  return ingress.filter((i) => i.ipMode !== 'Proxy' && cidrContains(pool, parseIPv4(i.ip) ?? -1)).map((i) => i.ip as string);
}

function sourceRanges(ranges: unknown[]): string[] {
  return ranges.map((r) => parseCidr(typeof r === 'string' ? r.trim() : r, true)?.text).filter((r): r is string => r !== undefined);
}

/** The nft definition of the table holding these rules (TableSync swaps it in). */
export function renderServiceRules(opts: ServiceRulesOptions, given: ServicePortRule[]): string {
  const t = opts.table;
  const rules = given.map((r) => safeRule(r, opts)).filter((r): r is ServicePortRule => r !== undefined);
  const chains: string[] = [];
  const serviceIps: string[] = [];
  const nodePorts: string[] = [];
  const noEndpoints: string[] = [];
  const noEndpointNodePorts: string[] = [];
  const sets: string[] = [];
  // One address, protocol and port maps to one Service: the first (rules are sorted) keeps it, as
  // a duplicate element would make nft refuse the whole table.
  const claimed = new Set<string>();
  const claim = (k: string) => !claimed.has(k) && !!claimed.add(k);
  for (const r of rules) {
    const id = hash(r.key);
    const svcChain = `svc-${id}`;
    if (r.clusterIP && claim(`${r.clusterIP} . ${r.protocol} . ${r.port}`)) {
      if (r.endpoints.length) serviceIps.push(`${r.clusterIP} . ${r.protocol} . ${r.port} : goto ${svcChain}`);
      else noEndpoints.push(`${r.clusterIP} . ${r.protocol} . ${r.port}`);
    }
    const externallyReachable = r.externalLocal ? r.endpoints.some((e) => e.local) : r.endpoints.length > 0;
    if (r.nodePort && claim(`${r.protocol} . ${r.nodePort}`)) {
      if (externallyReachable) nodePorts.push(`${r.protocol} . ${r.nodePort} : goto ext-${id}`);
      else noEndpointNodePorts.push(`${r.protocol} . ${r.nodePort}`);
    }
    for (const lb of r.loadBalancerIPs.filter((ip) => claim(`${ip} . ${r.protocol} . ${r.port}`))) {
      if (externallyReachable) serviceIps.push(`${lb} . ${r.protocol} . ${r.port} : goto ${r.sourceRanges ? 'lb' : 'ext'}-${id}`);
      else noEndpoints.push(`${lb} . ${r.protocol} . ${r.port}`);
    }
    if (!r.endpoints.length) continue;
    const epChain = (i: number) => `ep-${id}-${i}`;
    const pick = (list: number[]) =>
      list.length === 1 ? `goto ${epChain(list[0])}` : `numgen random mod ${list.length} vmap { ${list.map((n, i) => `${i} : goto ${epChain(n)}`).join(', ')} }`;
    const all = r.endpoints.map((_, i) => i);
    // One affinity set per endpoint, named by the endpoint and timeout, not its position: a client
    // keeps its endpoint while others come and go, and a changed timeout makes a fresh set.
    const affSet = (i: number) => `aff-${hash(`${r.key}|${r.endpoints[i].ip}:${r.endpoints[i].port}|${r.affinitySeconds}`)}`;
    const affinity = (list: number[]) => (r.affinitySeconds ? list.map((i) => `\t\tip saddr @${affSet(i)} goto ${epChain(i)}\n`).join('') : '');
    chains.push(`\tchain ${svcChain} {\n\t\tcomment "${r.key.replace(/[^\w./:-]/g, '_')}"\n${affinity(all)}\t\t${pick(all)}\n\t}\n`);
    // From outside the pod network a node port is masqueraded so replies come back through this
    // node, unless the Service asks to keep the client's address (Local: this node's endpoints only).
    const local = all.filter((i) => r.endpoints[i].local);
    // Loopback clients are masqueraded even under Local: a pod cannot answer 127.0.0.1.
    const ext = r.externalLocal
      ? local.length
        ? `\t\tip saddr 127.0.0.0/8 meta mark set meta mark | ${masqueradeMark}\n${affinity(local)}\t\t${pick(local)}\n`
        : '\t\tdrop\n'
      : `\t\tip saddr != ${opts.podCidr} meta mark set meta mark | ${masqueradeMark}\n\t\tgoto ${svcChain}\n`;
    if (r.nodePort || r.loadBalancerIPs.length) chains.push(`\tchain ext-${id} {\n${ext}\t}\n`);
    if (r.loadBalancerIPs.length && r.sourceRanges) {
      // loadBalancerSourceRanges: other clients are dropped, as a cloud firewall would.
      const allowed = r.sourceRanges.length ? `ip saddr != { ${r.sourceRanges.join(', ')} } drop\n\t\t` : 'drop\n\t\t';
      chains.push(`\tchain lb-${id} {\n\t\t${allowed}goto ext-${id}\n\t}\n`);
    }
    r.endpoints.forEach((e, i) => {
      if (r.affinitySeconds) sets.push(`\tset ${affSet(i)} {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout ${r.affinitySeconds}s\n\t}\n`);
      chains.push(
        `\tchain ${epChain(i)} {\n` +
          // A pod reaching itself through its Service: masquerade, or it would see its own address as the peer.
          `\t\tip saddr ${e.ip} meta mark set meta mark | ${masqueradeMark}\n` +
          (r.affinitySeconds ? `\t\tupdate @${affSet(i)} { ip saddr }\n` : '') +
          `\t\tmeta l4proto ${r.protocol} dnat to ${e.ip}:${e.port}\n\t}\n`,
      );
    });
  }
  // TCP gets a reset (ICMP errors are rate-limited per peer, so a client retrying fast could
  // wait out a retransmission instead of seeing the refusal); other protocols port-unreachable.
  const refuse = (match: string) => `\t\tct state new ${match} meta l4proto tcp reject with tcp reset\n\t\tct state new ${match} reject\n`;
  const elements = (list: string[]) => (list.length ? `\t\telements = { ${list.join(',\n\t\t\t')} }\n` : '');
  // Host traffic to cluster IPs: only for the host's own cluster (an isolated one shares its service range with other tenants).
  const hostChains = opts.isolated
    ? ''
    : `\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n` +
      `\tchain filter-output {\n\t\ttype filter hook output priority filter; policy accept;\n` +
      refuse('ip daddr . meta l4proto . th dport @no-endpoint-services') +
      '\t}\n';
  return (
    `table ip ${t} {\n` +
    `\tmap service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n${elements(serviceIps)}\t}\n` +
    `\tmap service-nodeports {\n\t\ttype inet_proto . inet_service : verdict\n${elements(nodePorts)}\t}\n` +
    `\tset no-endpoint-services {\n\t\ttype ipv4_addr . inet_proto . inet_service\n${elements(noEndpoints)}\t}\n` +
    `\tset no-endpoint-nodeports {\n\t\ttype inet_proto . inet_service\n${elements(noEndpointNodePorts)}\t}\n` +
    sets.join('') +
    `\tchain services {\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t\tfib daddr type local meta l4proto . th dport vmap @service-nodeports\n\t}\n` +
    `\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tiifname "${opts.bridge}" jump services\n\t}\n` +
    hostChains +
    `\tchain nat-postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n` +
    `\t\tmeta mark & ${masqueradeMark} == ${masqueradeMark} meta mark set meta mark & 0xffffbfff masquerade fully-random\n\t}\n` +
    // Refusals happen in filter hooks (nat chains cannot reject): a Service without endpoints
    // answers at once instead of letting the client time out.
    `\tchain filter-forward {\n\t\ttype filter hook forward priority filter; policy accept;\n` +
    refuse(`iifname "${opts.bridge}" ip daddr . meta l4proto . th dport @no-endpoint-services`) +
    // Pods reach each other, the host and nothing beyond (DESIGN §5): no forwarding off the bridge.
    `\t\tiifname "${opts.bridge}" oifname != "${opts.bridge}" drop\n\t}\n` +
    `\tchain filter-input {\n\t\ttype filter hook input priority filter; policy accept;\n` +
    // Pods may open connections to the host only at their own gateway (cluster DNS, node ports)
    // or through a DNAT: not to another cluster's gateway, nor to the host's other addresses,
    // nor to loopback (reachable since node ports on 127.0.0.1 need route_localnet).
    `\t\tiifname "${opts.bridge}" ct state != { established, related } ip daddr != ${opts.gateway} ct status != dnat drop\n` +
    refuse('fib daddr type local meta l4proto . th dport @no-endpoint-nodeports') +
    '\t}\n' +
    chains.join('') +
    '}\n'
  );
}

/**
 * The rule as it may be rendered, or undefined: what reaches nft text must be a well-formed
 * address or port (EndpointSlices and Services are written by the cluster's users, and an
 * isolated cluster's users are a tenant the host does not trust). Isolated, a rule loses its node
 * port and load-balancer addresses and keeps only endpoints inside the pod range.
 */
function safeRule(r: ServicePortRule, opts: ServiceRulesOptions): ServicePortRule | undefined {
  const port = (n: unknown): n is number => Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
  const ip = (a: unknown) => (typeof a === 'string' && parseIPv4(a) !== undefined ? formatIPv4(parseIPv4(a) as number) : undefined);
  if (!Object.values(protocols).includes(r.protocol) || !port(r.port)) return undefined;
  const clusterIP = r.clusterIP === undefined ? undefined : ip(r.clusterIP);
  if (r.clusterIP !== undefined && !clusterIP) return undefined;
  const pods = opts.isolated ? parseCidr(opts.podCidr) : undefined;
  const endpoints = r.endpoints.flatMap((e) => {
    const a = ip(e.ip);
    if (!a || !port(e.port) || (pods && !cidrContains(pods, parseIPv4(a) as number))) return [];
    return [{ ...e, ip: a }];
  });
  return {
    ...r,
    clusterIP,
    endpoints,
    nodePort: !opts.isolated && port(r.nodePort) ? r.nodePort : undefined,
    loadBalancerIPs: opts.isolated ? [] : r.loadBalancerIPs.flatMap((a) => ip(a) ?? []),
    sourceRanges: r.sourceRanges?.flatMap((c) => parseCidr(c, true)?.text ?? []),
    affinitySeconds: r.affinitySeconds !== undefined && Number.isInteger(r.affinitySeconds) && r.affinitySeconds > 0 ? Math.min(r.affinitySeconds, 86400) : undefined,
  };
}

function hash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}
