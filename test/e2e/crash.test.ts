import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type EtcdProcess, startEtcd } from '../support/etcd.js';
import { cm, rawClient } from '../support/http.js';
import { cleanup, startKubicle } from '../support/kubicle.js';

/**
 * kill -9 of the API server during a stream of writes, then a restart: every write that was
 * acknowledged (201) is there, for the SQLite and the etcd store.
 */
let etcd: EtcdProcess;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

for (const store of ['sqlite', 'etcd']) {
  describe(`kill -9 with the ${store} store`, () => {
    it('keeps every acknowledged write', async () => {
      const k = await startKubicle({ store: store === 'etcd' ? `${etcd.url}/crash-${Date.now()}` : 'sqlite' });
      try {
        let api = await rawClient(k);
        const acked: string[] = [];
        let stop = false;
        const writer = async (w: number) => {
          for (let i = 0; !stop; i++) {
            const name = `w${w}-${i}`;
            try {
              const r = await api.call('POST', '/api/v1/namespaces/default/configmaps', cm(name));
              if (r.status === 201) acked.push(name);
            } catch {
              return; // connection dropped by the kill
            }
          }
        };
        const writers = [0, 1, 2, 3].map(writer);
        while (acked.length < 200) await new Promise((r) => setTimeout(r, 10));
        await k.kill();
        stop = true;
        await Promise.all(writers);
        api.close();
        await k.start();
        api = await rawClient(k);
        const names = new Set<string>();
        let token = '';
        do {
          const page = await api.call('GET', `/api/v1/namespaces/default/configmaps?limit=500${token ? `&continue=${encodeURIComponent(token)}` : ''}`);
          for (const i of page.json.items) names.add(i.metadata.name);
          token = page.json.metadata.continue;
        } while (token);
        const lost = acked.filter((n) => !names.has(n));
        assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged writes lost`);
        api.close();
      } finally {
        await cleanup(k);
      }
    });
  });
}
