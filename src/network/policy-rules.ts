import { createHash } from 'node:crypto';
import { parseCidr } from '../api/ipv4.js';
import { labelSelectorMatches } from '../api/selectors.js';
import type { Obj } from '../client/kube-client.js';

/**
 * NetworkPolicy as one nftables table, with upstream's semantics: a pod is isolated for ingress
 * (egress) once any policy of that type selects it, and then only what the union of those
 * policies' rules allows gets through; replies to allowed connections always pass. Peers are pods
 * (podSelector and/or namespaceSelector) or ipBlocks with exceptions; ports may be named (resolved
 * against the pod that serves them), numbered, or ranges (endPort).
 *
 * Enforcement is on the host's forward and input hooks, which see pod-to-pod traffic on the bridge
 * (br_netfilter) after Service DNAT, so a policy applies to the endpoint a Service picked. Traffic
 * from the host itself (kubelet probes) is not subject to ingress policy, as with common CNIs.
 * The cluster DNS answers on the bridge gateway; for policy it stands as a pod labelled
 * k8s-app=kube-dns in kube-system, so upstream's usual "allow DNS" policy works unchanged.
 */
export interface PolicyRulesOptions {
  table: string;
  bridge: string;
  /** The cluster DNS endpoint, treated as the kube-dns pod. */
  dnsEndpoint?: string;
}

export interface PolicyPod {
  ip: string;
  namespace: string;
  labels: Record<string, string>;
  /** Named container ports: name → {port, protocol}. */
  ports: Map<string, { port: number; protocol: string }>;
}

/** Pods with an address on the pod network, plus the DNS stand-in. */
export function policyPods(pods: Obj[], opts: PolicyRulesOptions): PolicyPod[] {
  const out: PolicyPod[] = [];
  for (const p of pods) {
    if (p.spec?.hostNetwork || !p.status?.podIP || p.status.phase === 'Succeeded' || p.status.phase === 'Failed') continue;
    const ports = new Map<string, { port: number; protocol: string }>();
    for (const c of (p.spec?.containers ?? []) as Obj[]) for (const cp of (c.ports ?? []) as Obj[]) if (cp.name) ports.set(cp.name, { port: cp.containerPort, protocol: cp.protocol ?? 'TCP' });
    out.push({ ip: p.status.podIP, namespace: p.metadata.namespace, labels: p.metadata.labels ?? {}, ports });
  }
  if (opts.dnsEndpoint) {
    const dnsPorts = new Map([
      ['dns', { port: 53, protocol: 'UDP' }],
      ['dns-tcp', { port: 53, protocol: 'TCP' }],
    ]);
    out.push({ ip: opts.dnsEndpoint, namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ports: dnsPorts });
  }
  return out;
}

const protocols: Record<string, string> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

export function renderPolicyRules(opts: PolicyRulesOptions, policies: Obj[], pods: PolicyPod[], namespaces: Obj[]): string {
  const nsLabels = new Map<string, Record<string, string>>(namespaces.map((n) => [n.metadata.name, n.metadata.labels ?? {}]));
  /** Whether a pod is one a pod peer (podSelector and/or namespaceSelector) names. */
  const inPeer = (pol: Obj, peer: Obj, p: PolicyPod): boolean => {
    if (peer.ipBlock) return false;
    if (peer.namespaceSelector) {
      if (!labelSelectorMatches(peer.namespaceSelector, nsLabels.get(p.namespace) ?? { 'kubernetes.io/metadata.name': p.namespace })) return false;
    } else if (p.namespace !== pol.metadata.namespace) return false;
    return peer.podSelector ? labelSelectorMatches(peer.podSelector, p.labels) : true;
  };
  const selected = (pol: Obj) => pods.filter((p) => p.namespace === pol.metadata.namespace && labelSelectorMatches(pol.spec?.podSelector ?? {}, p.labels));
  /** The addresses a peer list names (undefined: any peer, when the list is empty or absent). */
  const peerMatches = (pol: Obj, peers: Obj[] | undefined, dir: 'saddr' | 'daddr'): string[] | undefined => {
    if (!peers?.length) return undefined;
    const out: string[] = [];
    for (const peer of peers) {
      if (peer.ipBlock) {
        // Host bits are allowed in the API (as upstream); nft wants the network.
        const cidr = parseCidr(peer.ipBlock.cidr, true)?.text;
        const except = ((peer.ipBlock.except ?? []) as string[]).map((e) => parseCidr(e, true)?.text).filter(Boolean);
        if (cidr) out.push(`ip ${dir} ${cidr}${except.length ? ` ip ${dir} != { ${except.join(', ')} }` : ''}`);
        continue;
      }
      const ips = pods.filter((p) => inPeer(pol, peer, p)).map((p) => p.ip);
      if (ips.length) out.push(`ip ${dir} { ${[...new Set(ips)].join(', ')} }`);
    }
    return out;
  };
  /** Port matches for a rule, named ports resolved against `target` (undefined: any port). */
  const portMatches = (ports: Obj[] | undefined, target: (name: string) => { port: number; protocol: string } | undefined): string[] | undefined => {
    if (!ports?.length) return undefined;
    const out: string[] = [];
    for (const p of ports) {
      const proto = protocols[p.protocol ?? 'TCP'];
      if (!proto) continue;
      if (p.port === undefined) out.push(`meta l4proto ${proto}`);
      else if (typeof p.port === 'number') out.push(`meta l4proto ${proto} th dport ${p.endPort ? `${p.port}-${p.endPort}` : p.port}`);
      else {
        const named = target(String(p.port));
        if (named && protocols[named.protocol] === proto) out.push(`meta l4proto ${proto} th dport ${named.port}`);
      }
    }
    return out;
  };

  const ingress = new Map<string, string[]>();
  const egress = new Map<string, string[]>();
  const isolate = (m: Map<string, string[]>, ip: string) => {
    const allow = m.get(ip) ?? [];
    m.set(ip, allow);
    return allow;
  };
  for (const pol of policies) {
    const types = (pol.spec?.policyTypes ?? ['Ingress']) as string[];
    for (const pod of selected(pol)) {
      if (types.includes('Ingress')) {
        const allow = isolate(ingress, pod.ip);
        for (const rule of (pol.spec?.ingress ?? []) as Obj[]) {
          const from = peerMatches(pol, rule.from, 'saddr');
          const ports = portMatches(rule.ports, (n) => pod.ports.get(n));
          if (from?.length === 0 || ports?.length === 0) continue; // names nothing that exists
          for (const f of from ?? ['']) for (const p of ports ?? ['']) allow.push(`${f} ${p}`.trim());
        }
      }
      if (types.includes('Egress')) {
        const allow = isolate(egress, pod.ip);
        for (const rule of (pol.spec?.egress ?? []) as Obj[]) {
          const named = ((rule.ports ?? []) as Obj[]).some((p) => typeof p.port === 'string');
          if (named) {
            // A named port means each destination's own port of that name: one match per peer pod.
            const to = (rule.to ?? []) as Obj[];
            for (const peer of pods.filter((p) => !to.length || to.some((peer) => inPeer(pol, peer, p)))) {
              for (const p of portMatches(rule.ports, (n) => peer.ports.get(n)) ?? []) allow.push(`ip daddr ${peer.ip} ${p}`);
            }
            continue;
          }
          const to = peerMatches(pol, rule.to, 'daddr');
          const ports = portMatches(rule.ports, () => undefined);
          if (to?.length === 0 || ports?.length === 0) continue;
          for (const t of to ?? ['']) for (const p of ports ?? ['']) allow.push(`${t} ${p}`.trim());
        }
      }
    }
  }

  const chains: string[] = [];
  const verdicts = (m: Map<string, string[]>, kind: string) => {
    const elems: string[] = [];
    for (const [ip, allows] of [...m].sort()) {
      const name = `${kind}-${createHash('sha256').update(ip).digest('hex').slice(0, 12)}`;
      elems.push(`${ip} : jump ${name}`);
      chains.push(`\tchain ${name} {\n\t\tcomment "${kind} of ${ip}"\n${allows.map((a) => `\t\t${a} return\n`).join('')}\t\tdrop\n\t}\n`);
    }
    return elems.length ? `\t\telements = { ${elems.join(',\n\t\t\t')} }\n` : '';
  };
  const ingressElems = verdicts(ingress, 'ingress');
  const egressElems = verdicts(egress, 'egress');
  const t = opts.table;
  return (
    `table ip ${t} {\n` +
    `\tmap ingress-pods {\n\t\ttype ipv4_addr : verdict\n${ingressElems}\t}\n` +
    `\tmap egress-pods {\n\t\ttype ipv4_addr : verdict\n${egressElems}\t}\n` +
    // Between pods (bridged or routed through a Service): the sender's egress, then the receiver's ingress.
    `\tchain forward {\n\t\ttype filter hook forward priority filter + 10; policy accept;\n` +
    `\t\tct state established,related accept\n` +
    `\t\tiifname "${opts.bridge}" ip saddr vmap @egress-pods\n` +
    `\t\toifname "${opts.bridge}" ip daddr vmap @ingress-pods\n\t}\n` +
    // From a pod to the host (the cluster DNS, node ports): the sender's egress, and the DNS
    // stand-in's ingress, should a policy select it.
    `\tchain input {\n\t\ttype filter hook input priority filter + 10; policy accept;\n` +
    `\t\tct state established,related accept\n` +
    `\t\tiifname "${opts.bridge}" ip saddr vmap @egress-pods\n` +
    `\t\tiifname "${opts.bridge}" ip daddr vmap @ingress-pods\n\t}\n` +
    chains.join('') +
    '}\n'
  );
}
