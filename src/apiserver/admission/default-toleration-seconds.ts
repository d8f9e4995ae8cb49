import type { KubeObject } from '../../api/object.js';
import type { ResourceType } from '../../api/resource-type.js';
import type { Admission } from '../object-store.js';

/**
 * DefaultTolerationSeconds: every pod tolerates a not-ready or unreachable node for 300 s before
 * eviction, unless it says otherwise, as upstream's admission plugin of that name does.
 */
const keys = ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable'];

export class DefaultTolerationSeconds implements Admission {
  constructor(private readonly seconds = 300) {}

  async admitCreate(rt: ResourceType, obj: KubeObject): Promise<void> {
    if (rt.plural !== 'pods' || rt.group !== '') return;
    const spec = obj.spec ?? {};
    const tolerations: KubeObject[] = spec.tolerations ?? [];
    for (const key of keys) {
      if (tolerations.some((t) => (t.key === key || (!t.key && t.operator === 'Exists')) && (!t.effect || t.effect === 'NoExecute'))) continue;
      tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: this.seconds } as unknown as KubeObject);
    }
    spec.tolerations = tolerations;
  }

  async admitDelete(): Promise<void> {}
}
