/**
 * IPv4 addresses and ranges as plain numbers, for service ranges, pod ranges and policy blocks.
 * Parsing is strict (dotted quad, no leading zeros beyond "0"), so a value that passes here is one
 * nft and ip accept too.
 */

const octet = /^(0|[1-9][0-9]{0,2})$/;

/** The address as an unsigned 32-bit number, or undefined if `s` is not a dotted-quad IPv4 address. */
export function parseIPv4(s: unknown): number | undefined {
  if (typeof s !== 'string') return undefined;
  const parts = s.split('.');
  if (parts.length !== 4 || parts.some((p) => !octet.test(p) || Number(p) > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** A CIDR block: `base` is the network address (host bits cleared), `size` the number of addresses. */
export interface Cidr {
  base: number;
  bits: number;
  size: number;
  text: string;
}

/** Parses "a.b.c.d/n"; undefined if malformed. Host bits must be zero unless `loose`. */
export function parseCidr(s: unknown, loose = false): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const [addr, bitsText, extra] = s.split('/');
  if (extra !== undefined || bitsText === undefined || !/^[0-9]{1,2}$/.test(bitsText)) return undefined;
  const bits = Number(bitsText);
  const ip = parseIPv4(addr);
  if (ip === undefined || bits > 32) return undefined;
  const size = 2 ** (32 - bits);
  const base = ip - (ip % size);
  if (base !== ip && !loose) return undefined;
  return { base, bits, size, text: `${formatIPv4(base)}/${bits}` };
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + c.size;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}
