import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cleanup, type Kubicle, kubectlFor, startKubicle } from '../support/kubicle.js';

/**
 * Exhausted ranges on a bare API server: a service range of 16 addresses (14 usable, the
 * kubernetes Service holding the first) and a node port range of two ports. The Service that does
 * not fit is refused with upstream's message and nothing is written; freeing one makes room.
 */
describe('exhausted service and node port ranges', () => {
  let k: Kubicle;
  let kc: Awaited<ReturnType<typeof kubectlFor>>;

  before(async () => {
    k = await startKubicle({ args: ['--service-cidr', '10.120.0.0/28', '--service-node-port-range', '30000-30001'] });
    kc = await kubectlFor(k, '1.33');
  });
  after(() => cleanup(k));

  const create = (name: string, type = 'clusterip') => kc(['create', 'service', type, name, '--tcp=80']);

  it('the service range: 13 more Services fit, the 14th is refused and not written; a delete makes room', async () => {
    for (let i = 0; i < 13; i++) assert.equal((await create(`s${i}`)).code, 0);
    const full = await create('s13');
    assert.notEqual(full.code, 0);
    assert.match(full.stderr, /Internal error occurred: failed to allocate a serviceIP: range is full/);
    assert.equal((await kc(['get', 'svc', 's13'])).code, 1, 'nothing was written');
    const ips = (await kc(['get', 'svc', '-o', 'jsonpath={.items[*].spec.clusterIP}'])).stdout.split(' ').sort();
    assert.deepEqual(ips, Array.from({ length: 14 }, (_, i) => `10.120.0.${i + 1}`).sort());
    assert.equal((await kc(['delete', 'svc', 's2'])).code, 0);
    assert.equal((await create('s13')).code, 0);
  });

  it('the node port range: two NodePort Services fit, the third is refused', async () => {
    await kc(['delete', 'svc', 's0', 's1', 's3']); // three free addresses for the rest of this test
    assert.equal((await create('np0', 'nodeport')).code, 0);
    assert.equal((await create('np1', 'nodeport')).code, 0);
    const full = await create('np2', 'nodeport');
    assert.notEqual(full.code, 0);
    assert.match(full.stderr, /failed to allocate a nodePort: range is full/);
    assert.equal((await kc(['get', 'svc', 'np2'])).code, 1, 'nothing was written, and no cluster IP kept');
    assert.equal((await create('after')).code, 0, 'the refused Service left no cluster IP claimed');
  });
});
