import { untoleratedTaint } from '../../api/node-match.js';
import type { FilterPlugin } from '../framework.js';

/** TaintToleration: a pod lands only where it tolerates every NoSchedule/NoExecute taint. */
export const taintToleration: FilterPlugin = {
  name: 'TaintToleration',
  filter(pod, n) {
    const taint = untoleratedTaint(pod.spec, n.node);
    return taint ? `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}` : undefined;
  },
};
