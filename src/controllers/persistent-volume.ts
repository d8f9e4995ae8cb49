import { LOCAL_PATH_FINALIZER, LOCAL_PATH_PROVISIONER, LOCAL_PATH_ROOT, SELECTED_NODE_ANNOTATION } from '../api/local-path.js';
import { namedNode, volumeAdmits } from '../api/node-match.js';
import { bytes } from '../api/quantity.js';
import { EventRecorder } from '../client/event-recorder.js';
import { type Informer, objectKey } from '../client/informer.js';
import type { InformerFactory } from '../client/informer-factory.js';
import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { WorkQueue } from '../client/work-queue.js';
import { isCode } from '../observe/errors.js';
import type { Logger } from '../observe/log.js';
import { selectorMatches } from './owner.js';

/**
 * PersistentVolume controller: binds each Pending claim to the smallest Available volume of its
 * class that offers its access modes, size and volume mode (and matches its selector); if none,
 * and its class's provisioner is kubicle.io/local-path, provisions one — a hostPath directory
 * under /var/lib/kubicle/local-path on the node the scheduler selected for the claim's first pod
 * (the class must be WaitForFirstConsumer), pinned there by node affinity and created by that
 * node when the pod mounts it. A volume whose claim is gone is Released, and deleted if its
 * reclaim policy is Delete; a provisioned one stays, finalized, until its node has removed the
 * directory.
 */

export class PersistentVolumeController {
  private readonly queue = new WorkQueue();
  private readonly claims: Informer;
  private readonly volumes: Informer;
  private readonly classes: Informer;

  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    informers: InformerFactory,
    private readonly log: Logger,
  ) {
    this.events = new EventRecorder(client, 'persistentvolume-controller', log);
    this.claims = informers.for('/api/v1/persistentvolumeclaims');
    this.volumes = informers.for('/api/v1/persistentvolumes');
    this.classes = informers.for('/apis/storage.k8s.io/v1/storageclasses');
    const claim = (c: Obj) => this.queue.add(`claim|${objectKey(c)}`);
    const volume = (v: Obj) => this.queue.add(`volume|${objectKey(v)}`);
    this.claims.on({
      add: claim,
      update: (_, c) => claim(c),
      delete: (c) => {
        for (const v of this.volumes.list()) if (v.spec?.claimRef?.uid === c.metadata.uid) volume(v);
      },
    });
    this.volumes.on({
      add: (v) => {
        volume(v);
        for (const c of this.claims.list()) if (c.status?.phase === 'Pending') claim(c);
      },
      update: (_, v) => volume(v),
    });
  }

  private async sync(key: string): Promise<void> {
    const [kind, id] = key.split('|');
    if (kind === 'claim') return this.syncClaim(id);
    return this.syncVolume(id);
  }

  private fits(pv: Obj, pvc: Obj): boolean {
    if ((pv.spec?.storageClassName ?? '') !== (pvc.spec?.storageClassName ?? '')) return false;
    if ((pv.spec?.volumeMode ?? 'Filesystem') !== (pvc.spec?.volumeMode ?? 'Filesystem')) return false;
    if (!(pvc.spec?.accessModes ?? []).every((m: string) => (pv.spec?.accessModes ?? []).includes(m))) return false;
    if (bytes(pv.spec?.capacity?.storage) < bytes(pvc.spec?.resources?.requests?.storage)) return false;
    if (pvc.spec?.selector && !selectorMatches(pvc.spec.selector, pv.metadata.labels)) return false;
    return true;
  }

  private async syncClaim(id: string): Promise<void> {
    const pvc = this.claims.get(id);
    if (!pvc || pvc.metadata.deletionTimestamp || pvc.status?.phase === 'Bound') return;
    const ns = pvc.metadata.namespace;
    const cls = this.classes.get(pvc.spec?.storageClassName ?? '');
    // A WaitForFirstConsumer claim binds once the scheduler has chosen its first pod's node, and
    // only to a volume that node can reach.
    const waits = cls?.volumeBindingMode === 'WaitForFirstConsumer';
    const node = pvc.metadata.annotations?.[SELECTED_NODE_ANNOTATION] as string | undefined;
    const reachable = (v: Obj) => !waits || !v.spec?.nodeAffinity?.required || (node !== undefined && volumeAdmits(v, namedNode(node)));
    let pv =
      (pvc.spec?.volumeName && this.volumes.get(pvc.spec.volumeName)) ||
      this.volumes.list().find((v) => v.spec?.claimRef?.uid === pvc.metadata.uid) ||
      (!waits || node
        ? this.volumes
            .list()
            .filter((v) => v.status?.phase === 'Available' && !v.spec?.claimRef && this.fits(v, pvc) && reachable(v))
            .sort((a, b) => bytes(a.spec.capacity.storage) - bytes(b.spec.capacity.storage))[0]
        : undefined);
    if (!pv) {
      if (cls?.provisioner !== LOCAL_PATH_PROVISIONER) return; // waits for a matching volume to appear
      if (!waits) {
        this.events.record(pvc, 'v1', 'PersistentVolumeClaim', 'Warning', 'ProvisioningFailed', `${LOCAL_PATH_PROVISIONER} provisions only for a StorageClass with volumeBindingMode WaitForFirstConsumer: a directory lives on one node, which must be known first`);
        return;
      }
      if (!node) {
        this.events.record(pvc, 'v1', 'PersistentVolumeClaim', 'Normal', 'WaitForFirstConsumer', 'waiting for first consumer to be created before binding');
        return;
      }
      const name = `pvc-${pvc.metadata.uid}`;
      try {
        pv = await this.client.create('/api/v1/persistentvolumes', {
          apiVersion: 'v1',
          kind: 'PersistentVolume',
          metadata: { name, annotations: { 'pv.kubernetes.io/provisioned-by': LOCAL_PATH_PROVISIONER }, finalizers: [LOCAL_PATH_FINALIZER] },
          spec: {
            capacity: { storage: pvc.spec.resources.requests.storage },
            accessModes: pvc.spec.accessModes,
            volumeMode: pvc.spec.volumeMode ?? 'Filesystem',
            storageClassName: cls.metadata.name,
            persistentVolumeReclaimPolicy: cls.reclaimPolicy ?? 'Delete',
            hostPath: { path: `${LOCAL_PATH_ROOT}/${name}`, type: 'DirectoryOrCreate' },
            nodeAffinity: { required: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [node] }] }] } },
            claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: ns, name: pvc.metadata.name, uid: pvc.metadata.uid },
          },
        });
        this.events.record(pvc, 'v1', 'PersistentVolumeClaim', 'Normal', 'ProvisioningSucceeded', `Successfully provisioned volume ${name}`);
      } catch (err) {
        if (!isCode(err, 'AlreadyExists')) throw err;
        return;
      }
    }
    // Bind: the volume first (its claimRef reserves it), then the claim.
    if (!pv.spec?.claimRef || pv.spec.claimRef.uid !== pvc.metadata.uid) {
      pv = await this.client.update(`/api/v1/persistentvolumes/${pv.metadata.name}`, {
        ...pv,
        spec: { ...pv.spec, claimRef: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', namespace: ns, name: pvc.metadata.name, uid: pvc.metadata.uid, resourceVersion: pvc.metadata.resourceVersion } },
      });
    }
    if (pv.status?.phase !== 'Bound') await this.client.update(`/api/v1/persistentvolumes/${pv.metadata.name}/status`, { ...pv, status: { phase: 'Bound' } });
    const claimPath = resourcePath({ version: 'v1', plural: 'persistentvolumeclaims', namespace: ns, name: pvc.metadata.name });
    const bound = await this.client.update(claimPath, {
      ...pvc,
      metadata: { ...pvc.metadata, annotations: { ...(pvc.metadata.annotations ?? {}), 'pv.kubernetes.io/bind-completed': 'yes' } },
      spec: { ...pvc.spec, volumeName: pv.metadata.name },
    });
    await this.client.update(`${claimPath}/status`, { ...bound, status: { phase: 'Bound', accessModes: pv.spec.accessModes, capacity: pv.spec.capacity } });
  }

  private async syncVolume(id: string): Promise<void> {
    const pv = this.volumes.get(id);
    if (!pv || pv.metadata.deletionTimestamp) return;
    const ref = pv.spec?.claimRef;
    const setPhase = (phase: string) =>
      pv.status?.phase === phase ? undefined : this.client.update(`/api/v1/persistentvolumes/${pv.metadata.name}/status`, { ...pv, status: { phase } });
    if (!ref) return void (await setPhase('Available'));
    const claim = this.claims.get(`${ref.namespace}/${ref.name}`);
    if (claim && (!ref.uid || claim.metadata.uid === ref.uid)) {
      if (claim.status?.phase !== 'Bound') this.queue.add(`claim|${objectKey(claim)}`);
      return;
    }
    if (claim === undefined) {
      // The claim may only be missing from the cache; confirm before releasing the volume.
      try {
        const live = await this.client.get(resourcePath({ version: 'v1', plural: 'persistentvolumeclaims', namespace: ref.namespace, name: ref.name }));
        if (!ref.uid || live.metadata.uid === ref.uid) return;
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
      }
    }
    if ((pv.spec.persistentVolumeReclaimPolicy ?? 'Retain') === 'Delete') {
      await this.client.delete(`/api/v1/persistentvolumes/${pv.metadata.name}`).catch((err) => {
        if (!isCode(err, 'NotFound')) throw err;
      });
      this.log.info('deleted released volume', { volume: pv.metadata.name });
    } else await setPhase('Released');
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([this.claims.synced, this.volumes.synced, this.classes.synced]);
    await this.queue.run(2, (key) => this.sync(key), signal, (key, err) => this.log.warn('volume sync failed', { key, err }));
  }
}
