import { nodeMatchesPod, nodeSelectorTermMatches } from '../../api/node-match.js';
import type { Obj } from '../../client/kube-client.js';
import type { FilterPlugin, ScorePlugin } from '../framework.js';

/** NodeAffinity: spec.nodeSelector and required node affinity; preferred terms score. */
export const nodeAffinity: FilterPlugin = {
  name: 'NodeAffinity',
  filter: (pod, n) => (nodeMatchesPod(pod.spec, n.node) ? undefined : "node(s) didn't match Pod's node affinity/selector"),
};

export const nodeAffinityPreferred: ScorePlugin = {
  name: 'NodeAffinityPreferred',
  weight: 2,
  score(pod, n) {
    const prefs: Obj[] = pod.spec?.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    if (!prefs.length) return 0;
    const total = prefs.reduce((s, p) => s + (p.weight ?? 0), 0) || 1;
    return (prefs.filter((p) => nodeSelectorTermMatches(n.node, p.preference ?? {})).reduce((s, p) => s + (p.weight ?? 0), 0) / total) * 100;
  },
};
