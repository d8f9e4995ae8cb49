import type { Obj } from '../client/kube-client.js';

export interface ClusterDnsSettings {
  /** The cluster DNS Service's address(es); empty: pods get the host's resolver settings. */
  nameservers: string[];
  domain: string;
}

export interface ResolverSettings {
  nameservers: string[];
  searches: string[];
  options: string[];
}

/** Limits of glibc's resolver, which upstream's kubelet also applies. */
const maxNameservers = 3;
const maxSearches = 32;

/**
 * A pod's resolv.conf, as upstream's kubelet writes it from dnsPolicy and dnsConfig:
 * - ClusterFirst: the cluster DNS, searching <ns>.svc.<domain>, svc.<domain>, <domain> and then the
 *   host's search list, with ndots:5 (host-network pods fall back to Default unless the policy is
 *   ClusterFirstWithHostNet);
 * - Default: the host's resolver settings;
 * - None: only what dnsConfig says.
 * dnsConfig then appends nameservers and searches (without repeats) and overrides options by name.
 */
export function podResolver(pod: Obj, cluster: ClusterDnsSettings, host: ResolverSettings): ResolverSettings {
  const spec = pod.spec ?? {};
  let policy: string = spec.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'ClusterFirst' && spec.hostNetwork) policy = 'Default';
  if (policy === 'ClusterFirstWithHostNet') policy = 'ClusterFirst';
  if (policy === 'ClusterFirst' && !cluster.nameservers.length) policy = 'Default';
  let out: ResolverSettings;
  if (policy === 'ClusterFirst') {
    const d = cluster.domain;
    out = { nameservers: [...cluster.nameservers], searches: [`${pod.metadata.namespace}.svc.${d}`, `svc.${d}`, d, ...host.searches], options: ['ndots:5'] };
  } else if (policy === 'Default') {
    out = { nameservers: [...host.nameservers], searches: [...host.searches], options: [...host.options] };
  } else {
    out = { nameservers: [], searches: [], options: [] };
  }
  const cfg = spec.dnsConfig ?? {};
  for (const n of (cfg.nameservers ?? []) as string[]) if (!out.nameservers.includes(n)) out.nameservers.push(n);
  for (const s of (cfg.searches ?? []) as string[]) if (!out.searches.includes(s)) out.searches.push(s);
  for (const o of (cfg.options ?? []) as Obj[]) {
    if (!o?.name) continue;
    out.options = out.options.filter((have) => have.split(':')[0] !== o.name);
    out.options.push(o.value !== undefined && o.value !== null ? `${o.name}:${o.value}` : o.name);
  }
  return { nameservers: out.nameservers.slice(0, maxNameservers), searches: out.searches.slice(0, maxSearches), options: out.options };
}

/** nameserver, search and options lines of a resolv.conf. */
export function parseResolvConf(text: string): ResolverSettings {
  const out: ResolverSettings = { nameservers: [], searches: [], options: [] };
  for (const line of text.split('\n')) {
    const [key, ...rest] = line.replace(/[#;].*/, '').trim().split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') out.searches = rest;
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}
