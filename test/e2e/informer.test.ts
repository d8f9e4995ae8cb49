import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { cm, rawClient } from '../support/http.js';
import { cleanup, type Kubicle, startKubicle } from '../support/kubicle.js';

/**
 * A @kubernetes/client-node informer against kubicle: it sees adds, updates and deletes, and
 * after the store compacts past its resourceVersion it gets 410 and relists.
 */
let k: Kubicle;
before(async () => {
  k = await startKubicle({ args: ['--compact-interval', '1'] });
});
after(async () => {
  await cleanup(k);
});

async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('sees adds, updates and deletes, and survives a 410 relist', async () => {
  let api = await rawClient(k);
  const NS = '/api/v1/namespaces/default/configmaps';
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(k.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const informer = k8s.makeInformer(kc, '/api/v1/namespaces/default/configmaps', () => core.listNamespacedConfigMap({ namespace: 'default' }));
  const seen: string[] = [];
  informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
  informer.on('update', (o) => seen.push(`update ${o.metadata?.name} ${o.data?.k}`));
  informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
  let restarts = 0;
  let finished = false;
  let retry: NodeJS.Timeout | undefined;
  informer.on('error', () => {
    restarts++;
    // Retry later than the server restart below, so the store has compacted past our version.
    if (!finished) retry = setTimeout(() => void informer.start().catch(() => {}), 4000);
  });
  await informer.start();
  try {
    await api.call('POST', NS, cm('a'));
    await until(() => seen.includes('add a'), 'add a');
    await api.call('PATCH', `${NS}/a`, '{"data":{"k":"v2"}}', { 'Content-Type': 'application/merge-patch+json' });
    await until(() => seen.includes('update a v2'), 'update a');
    await api.call('POST', NS, cm('b'));
    await api.call('DELETE', `${NS}/b`);
    await until(() => seen.includes('delete b'), 'delete b');
    const oldRv = (informer as unknown as { latestResourceVersion(): string }).latestResourceVersion();
    // Writes the informer does not see (another namespace) move the store past its version, so
    // after a restart the watch cache no longer covers it and compaction can remove it.
    for (const n of ['x1', 'x2', 'x3']) await api.call('POST', '/api/v1/namespaces/kube-public/configmaps', cm(n, 'kube-public'));

    // Restart the server; while the informer is away, change things and let compaction pass its version.
    await k.stop();
    api.close();
    await k.start();
    api = await rawClient(k);
    await api.call('POST', NS, cm('c'));
    await api.call('DELETE', `${NS}/a`);
    await new Promise((r) => setTimeout(r, 2500));
    const stale = api.watch(`${NS}?watch=true&resourceVersion=${oldRv}`);
    await stale.opened;
    await stale.until(() => stale.events.length > 0);
    assert.equal(stale.events[0].type, 'ERROR', `oldRv=${oldRv} events=${JSON.stringify(stale.events.slice(0, 2))} logs=${k.logs()}`);
    assert.equal(stale.events[0].object.code, 410, 'the old version is compacted: 410 Gone');
    stale.stop();

    await until(() => seen.includes('add c') && seen.includes('delete a'), 'relist after 410', 20_000);
    assert.ok(restarts >= 1);
    const names = informer
      .list()
      .map((o) => o.metadata?.name)
      .sort();
    assert.ok(names.includes('c') && !names.includes('a') && !names.includes('b'), `cache after relist: ${names}`);
  } finally {
    finished = true;
    clearTimeout(retry);
    await informer.stop();
    api.close();
  }
});
