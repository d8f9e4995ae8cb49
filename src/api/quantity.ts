import { KubicleError } from '../observe/errors.js';

/**
 * Kubernetes resource quantities ("100m", "1.5", "128Mi", "1G", "2e3") as numbers: CPU in
 * milli-units, everything else in base units. Exact enough for scheduling arithmetic.
 */
const suffixes: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = String(q)
    .trim()
    .match(/^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$/);
  if (!m) throw new KubicleError('BadRequest', `quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`);
  const base = Number(m[1]);
  if (m[2]) return base * 10 ** Number(m[2].slice(1));
  return base * (suffixes[m[3] ?? ''] ?? 1);
}

/** CPU in millicores, rounded up like upstream's MilliValue. */
export function milliCpu(q: string | number | undefined): number {
  return q === undefined ? 0 : Math.ceil(parseQuantity(q) * 1000 - 1e-9);
}

export function bytes(q: string | number | undefined): number {
  return q === undefined ? 0 : Math.ceil(parseQuantity(q));
}

const decimal: [number, string][] = [
  [1e18, 'E'],
  [1e15, 'P'],
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];
const binary: [number, string][] = [
  [2 ** 60, 'Ei'],
  [2 ** 50, 'Pi'],
  [2 ** 40, 'Ti'],
  [2 ** 30, 'Gi'],
  [2 ** 20, 'Mi'],
  [2 ** 10, 'Ki'],
];

/**
 * A value in base units in upstream's canonical form: the largest suffix that divides it exactly
 * (binary ones when `binarySI`, as for a sum of "Mi" quantities), a bare integer, or milli-units
 * ("250m") for fractions.
 */
export function formatQuantity(v: number, binarySI = false): string {
  if (!Number.isInteger(v)) return `${Math.round(v * 1000)}m`;
  if (v === 0) return '0';
  for (const [base, suffix] of binarySI ? binary : decimal) if (v % base === 0) return `${v / base}${suffix}`;
  return String(v);
}

/** Whether a quantity is written with a binary suffix (Ki, Mi, …), so sums keep that form. */
export function isBinarySI(q: string | number | undefined): boolean {
  return typeof q === 'string' && /[KMGTPE]i$/.test(q.trim());
}
