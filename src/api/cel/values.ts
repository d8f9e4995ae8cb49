import type { CelInput } from '@bufbuild/cel';
import { durationFromMs, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { isPlainObject } from '../object.js';
import type { OpenApiSchema } from '../openapi-schema.js';

/**
 * JSON values as CEL sees them under a CRD's structural schema, the way upstream's rules see them:
 * `integer` is int, `number` double, strings of format byte, duration, date and date-time are
 * bytes, durations and timestamps; objects are maps whose property names are escaped to CEL
 * identifiers; at a resource's root only apiVersion, kind and metadata.name/generateName are
 * visible.
 */

/** Words CEL reserves: a property of that name is reached as `__name__`. */
const reserved = new Set(['true', 'false', 'null', 'in', 'as', 'break', 'const', 'continue', 'else', 'for', 'function', 'if', 'import', 'let', 'loop', 'package', 'namespace', 'return', 'var', 'void', 'while']);

/** A property name as a CEL field name, or undefined if it cannot be one (then rules cannot reach it). */
export function escapeProperty(name: string): string | undefined {
  if (reserved.has(name)) return `__${name}__`;
  if (!/^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$/.test(name)) return undefined;
  return name.replaceAll('__', '__underscores__').replaceAll('.', '__dot__').replaceAll('-', '__dash__').replaceAll('/', '__slash__');
}

/** The property a CEL field name stands for (the inverse of escapeProperty). */
export function unescapeProperty(field: string): string {
  const kw = /^__(.+)__$/.exec(field);
  if (kw && reserved.has(kw[1])) return kw[1];
  return field.replace(/__(underscores|dot|dash|slash)__/g, (_m, w: string) => ({ underscores: '__', dot: '.', dash: '-', slash: '/' })[w] as string);
}

/** Whether `s` is the root of a resource (the CR itself or an embedded resource), whose metadata rules may barely see. */
export function resourceRootSchema(s: OpenApiSchema): OpenApiSchema {
  const properties: Record<string, OpenApiSchema> = { ...s.properties, apiVersion: { type: 'string' }, kind: { type: 'string' } };
  properties.metadata = { type: 'object', properties: { name: { type: 'string' }, generateName: { type: 'string' } } };
  return { ...s, properties };
}

/** `v` (valid under `s`) as a CEL value. `root` marks a resource root (see resourceRootSchema). */
export function toCel(s: OpenApiSchema | undefined, v: unknown, root = false): CelInput {
  if (v === null || v === undefined) return null;
  if (root && s) s = resourceRootSchema(s);
  if (Array.isArray(v)) return v.map((x) => toCel(s?.items, x, s?.items?.['x-kubernetes-embedded-resource'] === true));
  if (isPlainObject(v)) {
    const out = new Map<string, CelInput>();
    const props = s?.properties;
    const additional = typeof s?.additionalProperties === 'object' ? s.additionalProperties : undefined;
    for (const [k, x] of Object.entries(v)) {
      const sub = props?.[k];
      if (sub) {
        const name = escapeProperty(k);
        if (name !== undefined) out.set(name, toCel(sub, x, sub['x-kubernetes-embedded-resource'] === true));
      } else if (additional) out.set(k, toCel(additional, x, additional['x-kubernetes-embedded-resource'] === true));
      else if (!props || s?.['x-kubernetes-preserve-unknown-fields']) out.set(k, toCel(undefined, x));
    }
    return out;
  }
  if (typeof v === 'number') {
    const integral = Number.isInteger(v) && s?.type !== 'number';
    return integral ? BigInt(v) : v;
  }
  if (typeof v === 'string' && s?.type === 'string') {
    switch (s.format) {
      case 'byte':
        return new Uint8Array(Buffer.from(v, 'base64'));
      case 'duration': {
        const ms = parseGoDuration(v);
        return ms === undefined ? v : durationFromMs(ms);
      }
      case 'date':
      case 'date-time': {
        const t = Date.parse(v);
        return Number.isNaN(t) ? v : timestampFromDate(new Date(t));
      }
    }
  }
  return v as CelInput;
}

/** A Go duration string ("1h30m", "250ms") in milliseconds, or undefined. */
function parseGoDuration(s: string): number | undefined {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const m = /^([-+]?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(s);
  if (!m) return s === '0' ? 0 : undefined;
  let total = 0;
  for (const part of m[2].matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) total += Number(part[1]) * units[part[2]];
  return m[1] === '-' ? -total : total;
}
