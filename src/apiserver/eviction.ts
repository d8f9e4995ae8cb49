import type { KubeObject } from '../api/object.js';
import type { Registry } from '../api/registry.js';
import type { ResourceType } from '../api/resource-type.js';
import { labelSelectorToString, matchesLabels, parseLabelSelector } from '../api/selectors.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { DeleteOptions, ObjectStore } from './object-store.js';

/**
 * The pods/eviction subresource: a delete that respects PodDisruptionBudgets. A running pod
 * covered by a budget with no disruptions left is refused with 429 (kubectl drain retries);
 * otherwise the budget's allowance is taken (recorded in status.disruptedPods, guarded by its
 * resourceVersion) and the pod is deleted. Pods that are not running need no budget.
 */
export class Evictor {
  private readonly pdbs: ResourceType;

  constructor(
    registry: Registry,
    private readonly store: ObjectStore,
  ) {
    this.pdbs = registry.mustLookup('policy', 'v1', 'poddisruptionbudgets');
  }

  async evict(pods: ResourceType, ns: string, name: string, eviction: KubeObject): Promise<void> {
    if (eviction.kind !== 'Eviction') throw new KubicleError('BadRequest', `the object provided is unrecognized (must be of type Eviction): ${String(eviction.kind)}`);
    if (eviction.metadata?.name && eviction.metadata.name !== name) throw new KubicleError('BadRequest', `name in URL does not match name in Eviction object`);
    const opts: DeleteOptions = { ...(eviction.deleteOptions ?? {}), dryRun: Array.isArray(eviction.deleteOptions?.dryRun) && eviction.deleteOptions.dryRun.includes('All') };
    for (let attempt = 0; ; attempt++) {
      const pod = await this.store.get(pods, ns, name);
      const running = pod.status?.phase === 'Running' && !pod.metadata.deletionTimestamp;
      if (running) {
        const budgets = (await this.store.list(this.pdbs, ns, { labels: [], fields: [] })).items.filter((pdb) => {
          const sel = labelSelectorToString(pdb.spec?.selector);
          return sel && matchesLabels(parseLabelSelector(sel), pod.metadata.labels ?? {});
        });
        if (budgets.length > 1) throw new KubicleError('Internal', 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.');
        const pdb = budgets[0];
        if (pdb) {
          const st = pdb.status ?? {};
          if (st.observedGeneration !== undefined && st.observedGeneration < (pdb.metadata.generation ?? 1)) {
            throw tooMany(`The disruption budget ${pdb.metadata.name} is still being processed by the server.`);
          }
          if ((st.disruptionsAllowed ?? 0) < 1) {
            throw tooMany(`The disruption budget ${pdb.metadata.name} needs ${st.desiredHealthy ?? 0} healthy pods and has ${st.currentHealthy ?? 0} currently`);
          }
          if (!opts.dryRun) {
            try {
              await this.store.update(
                this.pdbs,
                ns,
                pdb.metadata.name!,
                (cur) => {
                  if (cur.metadata.resourceVersion !== pdb.metadata.resourceVersion) throw new KubicleError('Conflict', 'budget changed');
                  cur.status = {
                    ...(cur.status ?? {}),
                    disruptionsAllowed: (cur.status?.disruptionsAllowed ?? 0) - 1,
                    disruptedPods: { ...(cur.status?.disruptedPods ?? {}), [name]: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') },
                  };
                  return cur;
                },
                { subresource: 'status' },
              );
            } catch (err) {
              if (isCode(err, 'Conflict') && attempt < 5) continue;
              throw err;
            }
          }
        }
      }
      await this.store.delete(pods, ns, name, opts);
      return;
    }
  }
}

function tooMany(message: string): KubicleError {
  return new KubicleError('TooManyRequests', "Cannot evict pod as it would violate the pod's disruption budget.", {
    causes: [{ reason: 'DisruptionBudget', field: '', message }],
  });
}
