/**
 * Whether a pod may run on a node by its node selector, required node affinity and tolerations.
 * Pure functions over API objects, shared by the scheduler and the DaemonSet controller.
 */
// biome-ignore lint/suspicious/noExplicitAny: API objects are untyped JSON
type Obj = Record<string, any>;
type Requirement = { key: string; operator: string; values?: string[] };

function matchRequirement(labels: Record<string, string>, e: Requirement): boolean {
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

/** A NodeSelectorTerm: all its expressions (labels) and field expressions (metadata.name) hold. */
export function nodeSelectorTermMatches(node: Obj, term: Obj): boolean {
  const exprs: Requirement[] = term.matchExpressions ?? [];
  const fieldExprs: Requirement[] = term.matchFields ?? [];
  if (!exprs.length && !fieldExprs.length) return false;
  const labels = node.metadata?.labels ?? {};
  return exprs.every((e) => matchRequirement(labels, e)) && fieldExprs.every((e) => matchRequirement({ 'metadata.name': node.metadata?.name }, e));
}

/** spec.nodeSelector and requiredDuringScheduling node affinity. */
export function nodeMatchesPod(podSpec: Obj | undefined, node: Obj): boolean {
  const labels = node.metadata?.labels ?? {};
  for (const [k, v] of Object.entries((podSpec?.nodeSelector ?? {}) as Record<string, string>)) if (labels[k] !== v) return false;
  const terms: Obj[] | undefined = podSpec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  return !terms?.length || terms.some((t) => nodeSelectorTermMatches(node, t));
}

export function tolerates(tolerations: Obj[], taint: Obj): boolean {
  return tolerations.some((t) => {
    if (t.effect && t.effect !== taint.effect) return false;
    if (t.operator === 'Exists') return !t.key || t.key === taint.key;
    return t.key === taint.key && (t.value ?? '') === (taint.value ?? '');
  });
}

/** The first NoSchedule/NoExecute taint of the node the pod does not tolerate. */
export function untoleratedTaint(podSpec: Obj | undefined, node: Obj): Obj | undefined {
  const tolerations: Obj[] = podSpec?.tolerations ?? [];
  return ((node.spec?.taints ?? []) as Obj[]).find((taint) => taint.effect !== 'PreferNoSchedule' && !tolerates(tolerations, taint));
}

/** Whether a PersistentVolume's required node affinity admits the node (any does, without one). */
export function volumeAdmits(pv: Obj, node: Obj): boolean {
  const terms: Obj[] | undefined = pv.spec?.nodeAffinity?.required?.nodeSelectorTerms;
  return !terms || terms.some((t) => nodeSelectorTermMatches(node, t));
}

/** A node known only by its name, as affinity sees it: every node carries its name as kubernetes.io/hostname. */
export function namedNode(name: string): Obj {
  return { metadata: { name, labels: { 'kubernetes.io/hostname': name } } };
}
