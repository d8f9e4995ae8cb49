import { labelSelectorMatches } from '../api/selectors.js';
import { Informer } from '../client/informer.js';
import type { KubeClient, Obj } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/**
 * ClusterRole aggregation, as upstream's controller: a ClusterRole with an aggregationRule gets
 * as its rules those of every other ClusterRole its selectors match, in name order, without
 * repeats; its own rules are replaced. A change to any ClusterRole requeues every aggregated one.
 * Keys are ClusterRole names.
 */
const path = '/apis/rbac.authorization.k8s.io/v1/clusterroles';

export class ClusterRoleAggregation {
  private readonly queue = new WorkQueue();
  private readonly roles: Informer;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {
    this.roles = new Informer(client, path, log);
    const all = () => {
      for (const r of this.roles.list()) if (r.aggregationRule) this.queue.add(r.metadata.name);
    };
    this.roles.on({ add: all, update: all, delete: all });
  }

  private async sync(name: string): Promise<void> {
    const role = this.roles.get(name);
    const selectors = role?.aggregationRule?.clusterRoleSelectors;
    if (!role || !Array.isArray(selectors)) return;
    const rules: Obj[] = [];
    const seen = new Set<string>();
    const sources = this.roles
      .list()
      .filter((r) => r.metadata.name !== name && selectors.some((s: Obj) => labelSelectorMatches(s, r.metadata.labels)))
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    for (const src of sources) {
      for (const r of (src.rules ?? []) as Obj[]) {
        const key = JSON.stringify(r);
        if (seen.has(key)) continue;
        seen.add(key);
        rules.push(r);
      }
    }
    if (JSON.stringify(role.rules ?? []) === JSON.stringify(rules)) return;
    try {
      await this.client.update(`${path}/${encodeURIComponent(name)}`, { ...role, rules });
      this.log.info('aggregated cluster role', { name, rules: rules.length, from: sources.map((s) => s.metadata.name) });
    } catch (err) {
      // A newer version is on its way through the informer, which requeues the role.
      if (!isCode(err, 'Conflict') && !isCode(err, 'NotFound')) throw err;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const informer = this.roles.run(signal);
    await Promise.race([this.roles.synced, informer]);
    await Promise.all([informer, this.queue.run(1, (name) => this.sync(name), signal, (name, err) => this.log.warn('cluster role aggregation failed', { name, err }))]);
  }
}
