import { KubicleError } from '../observe/errors.js';

/**
 * Label and field selectors in their query-string syntax, as kubectl and client-go send them.
 * Parse errors are BadRequest with upstream-like messages.
 */
export type LabelRequirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'gt' | 'lt'; value: number };

export type LabelSelector = LabelRequirement[];

export function parseLabelSelector(text: string | null | undefined): LabelSelector {
  const reqs: LabelSelector = [];
  if (!text?.trim()) return reqs;
  // Split on commas that are not inside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = p.match(/^!\s*([^\s=!<>(),]+)$/))) reqs.push({ key: m[1], op: '!exists' });
    else if ((m = p.match(/^([^\s=!<>(),]+)\s+(in|notin)\s+\(([^)]*)\)$/))) {
      reqs.push({ key: m[1], op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()) });
    } else if ((m = p.match(/^([^\s=!<>(),]+)\s*(==|=|!=)\s*([^\s=!<>(),]*)$/))) {
      reqs.push({ key: m[1], op: m[2] === '!=' ? '!=' : '=', value: m[3] });
    } else if ((m = p.match(/^([^\s=!<>(),]+)\s*([<>])\s*(-?\d+)$/))) {
      reqs.push({ key: m[1], op: m[2] === '>' ? 'gt' : 'lt', value: Number(m[3]) });
    } else if ((m = p.match(/^([^\s=!<>(),]+)$/))) reqs.push({ key: m[1], op: 'exists' });
    else throw new KubicleError('BadRequest', `unable to parse requirement: found '${p}', expected: identifier, !, in, notin, =, ==, !=, gt or lt`);
  }
  return reqs;
}

export function matchesLabels(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const r of sel) {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'exists':
        if (!has) return false;
        break;
      case '!exists':
        if (has) return false;
        break;
      case '=':
        if (!has || v !== r.value) return false;
        break;
      case '!=':
        if (has && v === r.value) return false;
        break;
      case 'in':
        if (!has || !r.values.includes(v)) return false;
        break;
      case 'notin':
        if (has && r.values.includes(v)) return false;
        break;
      case 'gt':
        if (!has || !(Number(v) > r.value)) return false;
        break;
      case 'lt':
        if (!has || !(Number(v) < r.value)) return false;
        break;
    }
  }
  return true;
}

/** metav1.LabelSelector (matchLabels / matchExpressions) to the query-string form. */
export function labelSelectorToString(sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined): string {
  if (!sel) return '';
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

const parsedSelectors = new WeakMap<object, LabelSelector>();

/**
 * Whether a metav1.LabelSelector object selects these labels, with upstream's meaning: a missing
 * selector selects nothing, an empty one everything. Parsed once per selector object, since
 * callers test one selector against many pods.
 */
export function labelSelectorMatches(selector: Parameters<typeof labelSelectorToString>[0] | null, labels: Record<string, string> | undefined): boolean {
  if (!selector) return false;
  let parsed = parsedSelectors.get(selector);
  if (!parsed) {
    const text = labelSelectorToString(selector);
    parsed = text ? parseLabelSelector(text) : [];
    parsedSelectors.set(selector, parsed);
  }
  return matchesLabels(parsed, labels ?? {});
}

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export function parseFieldSelector(text: string | null | undefined): FieldRequirement[] {
  if (!text?.trim()) return [];
  const out: FieldRequirement[] = [];
  for (const raw of splitUnescaped(text, ',')) {
    const m = raw.trim().match(/^([^=!]+?)\s*(==|=|!=)\s*(.*)$/);
    if (!m) throw new KubicleError('BadRequest', `invalid selector: '${text}'; can't understand '${raw}'`);
    out.push({ field: m[1], op: m[2] === '!=' ? '!=' : '=', value: m[3].replace(/\\(.)/g, '$1') });
  }
  return out;
}

function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) {
      cur += s[i] + s[i + 1];
      i++;
    } else if (s[i] === sep) {
      out.push(cur);
      cur = '';
    } else cur += s[i];
  }
  out.push(cur);
  return out;
}

export function matchesFields(reqs: FieldRequirement[], fields: Record<string, string>): boolean {
  for (const r of reqs) {
    const v = fields[r.field] ?? '';
    if (r.op === '=' ? v !== r.value : v === r.value) return false;
  }
  return true;
}
