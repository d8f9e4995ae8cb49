import type { SandboxSpec } from './api/types.js';

/** A sandbox's /etc/hosts, /etc/resolv.conf and /etc/hostname, the same for every runtime. */
export function etcFiles(spec: SandboxSpec, ip?: string): { hosts: string; 'resolv.conf': string; hostname: string } {
  const hosts = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback', ...(ip ? [`${ip}\t${spec.hostname}`] : [])];
  for (const a of spec.hostAliases ?? []) hosts.push(`${a.ip}\t${a.hostnames.join(' ')}`);
  const dns = spec.dns ?? {};
  const resolv = [...(dns.nameservers ?? []).map((n) => `nameserver ${n}`), ...(dns.searches?.length ? [`search ${dns.searches.join(' ')}`] : []), ...(dns.options?.length ? [`options ${dns.options.join(' ')}`] : [])];
  return { hosts: `${hosts.join('\n')}\n`, 'resolv.conf': `${resolv.join('\n')}\n`, hostname: `${spec.hostname}\n` };
}
