import type { Obj } from '../../client/kube-client.js';
import type { FilterPlugin, ScorePlugin } from '../framework.js';

/** NodeAffinity: spec.nodeSelector and required node affinity; preferred terms score. */
type Req = { key: string; operator: string; values?: string[] };

function matchExpr(labels: Record<string, string>, e: Req): boolean {
  const has = Object.hasOwn(labels, e.key);
  const v = labels[e.key];
  switch (e.operator) {
    case 'In':
      return has && (e.values ?? []).includes(v);
    case 'NotIn':
      return !has || !(e.values ?? []).includes(v);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
    case 'Gt':
      return has && Number(v) > Number(e.values?.[0]);
    case 'Lt':
      return has && Number(v) < Number(e.values?.[0]);
    default:
      return false;
  }
}

function termMatches(node: Obj, term: Obj): boolean {
  const labels = node.metadata?.labels ?? {};
  const fields: Record<string, string> = { 'metadata.name': node.metadata?.name };
  const exprs: Req[] = term.matchExpressions ?? [];
  const fieldExprs: Req[] = term.matchFields ?? [];
  if (!exprs.length && !fieldExprs.length) return false;
  return exprs.every((e) => matchExpr(labels, e)) && fieldExprs.every((e) => matchExpr(fields, e));
}

export const nodeAffinity: FilterPlugin = {
  name: 'NodeAffinity',
  filter(pod, n) {
    const labels = n.node.metadata?.labels ?? {};
    for (const [k, v] of Object.entries((pod.spec?.nodeSelector ?? {}) as Record<string, string>)) {
      if (labels[k] !== v) return "node(s) didn't match Pod's node affinity/selector";
    }
    const terms: Obj[] | undefined = pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
    if (terms?.length && !terms.some((t) => termMatches(n.node, t))) return "node(s) didn't match Pod's node affinity/selector";
    return undefined;
  },
};

export const nodeAffinityPreferred: ScorePlugin = {
  name: 'NodeAffinityPreferred',
  weight: 2,
  score(pod, n) {
    const prefs: Obj[] = pod.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    if (!prefs.length) return 0;
    const total = prefs.reduce((s, p) => s + (p.weight ?? 0), 0) || 1;
    return (prefs.filter((p) => termMatches(n.node, p.preference ?? {})).reduce((s, p) => s + (p.weight ?? 0), 0) / total) * 100;
  },
};
