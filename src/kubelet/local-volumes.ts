import { LOCAL_PATH_FINALIZER } from '../api/local-path.js';
import { namedNode, volumeAdmits } from '../api/node-match.js';
import { Informer } from '../client/informer.js';
import type { KubeClient, Obj } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';

/** What removes a volume's directory on this node; the node simulator has none (no disk of its own). */
export type RemoveDir = (dir: string) => Promise<void>;

/**
 * The node's part in reclaiming local-path volumes. A provisioned volume is pinned by node
 * affinity to the node it was made for and carries LOCAL_PATH_FINALIZER; once deleted (its claim
 * gone, reclaim policy Delete), that node removes its directory, then the finalizer, and the
 * volume object goes. Until the node has done so the volume stays, Terminating, so no data is
 * left behind unseen. Failures are retried with back-off.
 */
export class LocalVolumeCleaner {
  private readonly volumes: Informer;
  private readonly queue = new WorkQueue(500, 60_000);

  constructor(
    private readonly client: KubeClient,
    private readonly nodes: readonly string[],
    private readonly removeDir: RemoveDir | undefined,
    private readonly log: Logger,
  ) {
    this.volumes = new Informer(client, '/api/v1/persistentvolumes', log);
    const consider = (pv: Obj) => {
      if (pv.metadata.deletionTimestamp && pv.metadata.finalizers?.includes(LOCAL_PATH_FINALIZER)) this.queue.add(pv.metadata.name);
    };
    this.volumes.on({ add: consider, update: (_, pv) => consider(pv) });
  }

  /** The node of ours the volume is pinned to, if any. */
  private nodeOf(pv: Obj): string | undefined {
    if (!pv.spec?.nodeAffinity?.required) return undefined;
    return this.nodes.find((name) => volumeAdmits(pv, namedNode(name)));
  }

  private async sync(name: string): Promise<void> {
    const pv = this.volumes.get(name);
    if (!pv?.metadata.deletionTimestamp || !pv.metadata.finalizers?.includes(LOCAL_PATH_FINALIZER)) return;
    const node = this.nodeOf(pv);
    if (!node) return;
    const dir = pv.spec?.hostPath?.path;
    if (dir && this.removeDir) await this.removeDir(dir);
    const finalizers = pv.metadata.finalizers.filter((f: string) => f !== LOCAL_PATH_FINALIZER);
    try {
      await this.client.patch(
        `/api/v1/persistentvolumes/${encodeURIComponent(name)}`,
        [
          { op: 'test', path: '/metadata/resourceVersion', value: pv.metadata.resourceVersion },
          { op: 'replace', path: '/metadata/finalizers', value: finalizers },
        ],
        'application/json-patch+json',
      );
    } catch (err) {
      if (isCode(err, 'NotFound')) return;
      throw err;
    }
    this.log.info('removed a deleted local volume', { volume: name, node, dir });
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.volumes.run(signal), this.queue.run(1, (name) => this.sync(name), signal, (name, err) => this.log.warn('removing a local volume failed', { volume: name, err }))]);
  }
}
