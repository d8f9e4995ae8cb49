import type { Attributes } from './authorizer.js';

/**
 * RBAC's policy rules and how they match, as upstream's RBAC authorizer reads them: a verb, API
 * group, resource ("pods", "pods/log", "*", "*\/scale") and name must each be allowed by one rule;
 * a rule with resourceNames never matches a request without a name (list, watch, create).
 * Non-resource URLs match exactly, or by a prefix that ends in "*".
 */
export interface PolicyRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** The members of the built-in group that holds every right, as upstream's system:masters. */
export const mastersGroup = 'system:masters';

export function ruleAllows(rule: PolicyRule, a: Attributes): boolean {
  if (!has(rule.verbs, a.verb)) return false;
  if (!a.resource) return (rule.nonResourceURLs ?? []).some((u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))));
  if (!has(rule.apiGroups, a.group ?? '')) return false;
  if (!resourceMatches(rule.resources ?? [], a.resource, a.subresource)) return false;
  return !rule.resourceNames?.length || (!!a.name && rule.resourceNames.includes(a.name));
}

function has(list: string[] | undefined, value: string): boolean {
  return !!list && (list.includes('*') || list.includes(value));
}

function resourceMatches(resources: string[], resource: string, subresource: string | undefined): boolean {
  const combined = subresource ? `${resource}/${subresource}` : resource;
  return resources.some((r) => r === '*' || r === combined || (!!subresource && r === `*/${subresource}`));
}

/**
 * The rules of `wanted` that `held` does not cover, broken into single-verb, single-resource
 * pieces (upstream's escalation check): a rule is covered when every piece is allowed by one
 * held rule, a "*" in a wanted rule needing a "*" in a held one.
 */
export function uncovered(held: PolicyRule[], wanted: PolicyRule[]): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const piece of wanted.flatMap(atomize)) if (!held.some((h) => covers(h, piece))) out.push(piece);
  return out;
}

function atomize(r: PolicyRule): PolicyRule[] {
  const out: PolicyRule[] = [];
  for (const verb of r.verbs ?? []) {
    for (const url of r.nonResourceURLs ?? []) out.push({ verbs: [verb], nonResourceURLs: [url] });
    for (const group of r.apiGroups ?? [])
      for (const resource of r.resources ?? []) {
        if (r.resourceNames?.length) for (const name of r.resourceNames) out.push({ verbs: [verb], apiGroups: [group], resources: [resource], resourceNames: [name] });
        else out.push({ verbs: [verb], apiGroups: [group], resources: [resource] });
      }
  }
  return out;
}

/** Whether `owner` allows all of the single piece `p`. */
function covers(owner: PolicyRule, p: PolicyRule): boolean {
  if (!has(owner.verbs, p.verbs[0])) return false;
  if (p.nonResourceURLs) {
    const u = p.nonResourceURLs[0];
    return (owner.nonResourceURLs ?? []).some((o) => o === '*' || o === u || (o.endsWith('*') && u.startsWith(o.slice(0, -1))));
  }
  if (!has(owner.apiGroups, p.apiGroups?.[0] ?? '')) return false;
  const res = p.resources?.[0] ?? '';
  const ownerRes = owner.resources ?? [];
  const slash = res.indexOf('/');
  const resourceOk = ownerRes.includes('*') || ownerRes.includes(res) || (slash > 0 && ownerRes.includes(`*${res.slice(slash)}`));
  if (!resourceOk) return false;
  if (!owner.resourceNames?.length) return true;
  return !!p.resourceNames?.length && owner.resourceNames.includes(p.resourceNames[0]);
}

/** Pieces that differ only in their verb, as one rule with the verbs together (how upstream lists what is missing). */
export function compactRules(rules: PolicyRule[]): PolicyRule[] {
  const out: PolicyRule[] = [];
  const byTarget = new Map<string, PolicyRule>();
  for (const r of rules) {
    const key = JSON.stringify([r.apiGroups, r.resources, r.resourceNames, r.nonResourceURLs]);
    const seen = byTarget.get(key);
    if (seen) {
      for (const v of r.verbs) if (!seen.verbs.includes(v)) seen.verbs.push(v);
      continue;
    }
    const copy = { ...r, verbs: [...r.verbs] };
    byTarget.set(key, copy);
    out.push(copy);
  }
  return out;
}

/** A rule as upstream prints it in escalation errors: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`. */
export function compactRule(r: PolicyRule): string {
  const q = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(' ')}]`;
  const parts: string[] = [];
  if (r.apiGroups?.length) parts.push(`APIGroups:${q(r.apiGroups)}`);
  if (r.resources?.length) parts.push(`Resources:${q(r.resources)}`);
  if (r.resourceNames?.length) parts.push(`ResourceNames:${q(r.resourceNames)}`);
  if (r.nonResourceURLs?.length) parts.push(`NonResourceURLs:${q(r.nonResourceURLs)}`);
  parts.push(`Verbs:${q(r.verbs)}`);
  return `{${parts.join(', ')}}`;
}
