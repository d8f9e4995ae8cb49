import { InformerFactory } from '../client/informer-factory.js';
import type { KubeClient } from '../client/kube-client.js';
import type { Logger } from '../observe/log.js';
import { ensureSysctl, removeTable } from './host-net.js';
import { type PolicyRulesOptions, policyPods, renderPolicyRules } from './policy-rules.js';
import { TableSync } from './table-sync.js';

/**
 * The node's NetworkPolicy enforcement: watches NetworkPolicies, pods and namespaces and keeps one
 * nftables table in step with them (see policy-rules.ts for the semantics, TableSync for the
 * swaps). Until a policy selects a pod, everything is allowed. On stop the table is removed.
 */
export class PolicyEnforcer {

  constructor(
    private readonly client: KubeClient,
    private readonly opts: PolicyRulesOptions,
    private readonly log: Logger,
  ) {
  }

  async run(signal: AbortSignal): Promise<void> {
    // Pod-to-pod traffic on one bridge is enforced in the ip family's hooks only with this on.
    await ensureSysctl('net.bridge.bridge-nf-call-iptables', '1');
    const informers = new InformerFactory(this.client, this.log);
    const policies = informers.for('/apis/networking.k8s.io/v1/networkpolicies');
    const pods = informers.for('/api/v1/pods');
    const namespaces = informers.for('/api/v1/namespaces');
    const table = new TableSync(() => renderPolicyRules(this.opts, policies.list(), policyPods(pods.list(), this.opts), namespaces.list()), this.log);
    const changed = () => void table.schedule();
    for (const inf of [policies, pods, namespaces]) inf.on({ add: changed, update: changed, delete: changed });
    informers.start(signal);
    await informers.synced();
    await table.schedule();
    this.log.info('network policy ready', { table: this.opts.table });
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await table.stop();
    await informers.stopped();
    await removeTable(this.opts.table).catch((err) => this.log.warn('policy table not removed', { err }));
  }
}
