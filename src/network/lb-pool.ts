import { type Cidr, cidrContains, formatIPv4, parseIPv4 } from '../api/ipv4.js';
import type { Obj } from '../client/kube-client.js';

/** The class this platform's load balancer answers for; Services naming another are left alone. */
export const LOAD_BALANCER_CLASS = 'kubicle.io/load-balancer';
/** Annotation asking for the PROXY protocol ("v1" or "v2") in front of each connection. */
export const PROXY_PROTOCOL_ANNOTATION = 'service.kubicle.io/proxy-protocol';

export type Assignment = { ip: string; ipMode: 'VIP' | 'Proxy' } | { error: string };

/**
 * Addresses for LoadBalancer Services from the pool, decided from the Services alone so that the
 * assignment survives restarts without state of its own: oldest Service first, each keeps the
 * address its status already shows (when still in the pool and free), else takes the one it asks
 * for in spec.loadBalancerIP, else the lowest free one. The pool's network and broadcast addresses
 * and `reserved` ones (the ingress controller's) are never handed out. A Service that cannot
 * have an address gets the reason instead, worded for an Event.
 */
export function assignLoadBalancerIPs(services: Obj[], pool: Cidr, reserved: string[]): Map<string, Assignment> {
  const taken = new Map<number, string>(reserved.map((ip) => [parseIPv4(ip) ?? -1, 'reserved']));
  const usable = (n: number) => cidrContains(pool, n) && (pool.size <= 2 || (n !== pool.base && n !== pool.base + pool.size - 1));
  const ours = services.filter(wantsAddress).sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)) || key(a).localeCompare(key(b)));
  const out = new Map<string, Assignment>();
  const give = (svc: Obj, ip: number) => {
    taken.set(ip, key(svc));
    out.set(key(svc), { ip: formatIPv4(ip), ipMode: proxyProtocol(svc) ? 'Proxy' : 'VIP' });
  };
  // First the addresses Services ask for or already hold, so a newcomer never takes one of them.
  const fresh: Obj[] = [];
  for (const svc of ours) {
    const annotation = svc.metadata.annotations?.[PROXY_PROTOCOL_ANNOTATION];
    if (annotation !== undefined && !proxyProtocol(svc)) {
      out.set(key(svc), { error: `annotation ${PROXY_PROTOCOL_ANNOTATION} must be "v1" or "v2", not ${JSON.stringify(annotation)}` });
      continue;
    }
    if (svc.spec.loadBalancerIP) {
      const asked = parseIPv4(svc.spec.loadBalancerIP);
      const holder = asked === undefined ? undefined : taken.get(asked);
      if (asked === undefined || !usable(asked)) out.set(key(svc), { error: `spec.loadBalancerIP ${svc.spec.loadBalancerIP} is not in the load balancer pool ${pool.text}` });
      else if (holder) out.set(key(svc), { error: `spec.loadBalancerIP ${svc.spec.loadBalancerIP} is already in use by ${holder}` });
      else give(svc, asked);
      continue;
    }
    const current = ((svc.status?.loadBalancer?.ingress ?? []) as Obj[]).map((i) => parseIPv4(i.ip)).find((n) => n !== undefined && usable(n) && !taken.has(n));
    if (current === undefined) fresh.push(svc);
    else give(svc, current);
  }
  let next = pool.base;
  for (const svc of fresh) {
    while (next < pool.base + pool.size && (!usable(next) || taken.has(next))) next++;
    if (next < pool.base + pool.size) give(svc, next);
    else out.set(key(svc), { error: `no available IPs in the load balancer pool ${pool.text}` });
  }
  return out;
}

export function wantsAddress(svc: Obj): boolean {
  const cls = svc.spec?.loadBalancerClass;
  return svc.spec?.type === 'LoadBalancer' && (!cls || cls === LOAD_BALANCER_CLASS);
}

/** The PROXY protocol version a Service asks for, if any. */
export function proxyProtocol(svc: Obj): 'v1' | 'v2' | undefined {
  const v = svc.metadata?.annotations?.[PROXY_PROTOCOL_ANNOTATION];
  return v === 'v1' || v === 'v2' ? v : undefined;
}

const key = (svc: Obj) => `${svc.metadata.namespace}/${svc.metadata.name}`;
