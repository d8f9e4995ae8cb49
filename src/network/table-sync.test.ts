import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { createLogger } from '../observe/log.js';
import { nft, removeTable } from './host-net.js';
import { renderServiceRules, servicePortRules } from './service-rules.js';
import { TableSync, tableObjects, transition } from './table-sync.js';

const opts = { table: 'kubicle-unit-sync', bridge: 'kubunit1', podCidr: '10.246.8.0/24', gateway: '10.246.8.1', nodeName: 'n1' };
const service = (name: string, ip: string) => ({
  metadata: { namespace: 'd', name },
  spec: { clusterIP: ip, sessionAffinity: 'ClientIP', ports: [{ port: 80, protocol: 'TCP' }] },
});
const slice = (svc: string, ips: string[]) => ({
  metadata: { namespace: 'd', name: `${svc}-1`, labels: { 'kubernetes.io/service-name': svc } },
  addressType: 'IPv4',
  ports: [{ port: 8080, protocol: 'TCP' }],
  endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName: 'n1' })),
});
const listSet = (name: string) => execFileSync('nft', ['list', 'set', 'ip', opts.table, name], { encoding: 'utf8' });
const tableText = () => execFileSync('nft', ['list', 'table', 'ip', opts.table], { encoding: 'utf8' });

test('a definition names its chains, and its sets and maps with whether the datapath fills them', () => {
  const objs = tableObjects(renderServiceRules(opts, servicePortRules([service('a', '10.96.8.10')], [slice('a', ['10.246.8.5'])], 'n1')));
  assert.equal(objs.table, opts.table);
  assert.ok(objs.chains.has('services') && objs.chains.has('nat-output'));
  assert.deepEqual(objs.sets.get('service-ips'), { kind: 'map', dynamic: false });
  const affinity = [...objs.sets].filter(([, s]) => s.dynamic);
  assert.equal(affinity.length, 1, 'one affinity set for the one endpoint');
  assert.throws(() => tableObjects('chain x {}'), /not a table definition/);
});

test('swaps keep ClientIP affinity entries, drop what vanished, and start clean without a known state', async (t) => {
  try {
    execFileSync('nft', ['--version']);
  } catch {
    return t.skip('nft is not installed (scripts/setup.sh installs it)');
  }
  t.after(() => removeTable(opts.table));
  const first = renderServiceRules(opts, servicePortRules([service('a', '10.96.8.10'), service('b', '10.96.8.11')], [slice('a', ['10.246.8.5']), slice('b', ['10.246.8.6'])], 'n1'));
  await nft(transition(first));
  const before = tableObjects(first);
  // The affinity set that the endpoint 10.246.8.5's chain updates.
  const affA = /update @(aff-[0-9a-f]+) \{ ip saddr \}\n\t\tmeta l4proto tcp dnat to 10\.246\.8\.5:8080/.exec(first)?.[1] ?? assert.fail('no affinity set');
  // What the datapath would have recorded for a client of the first endpoint.
  execFileSync('nft', ['add', 'element', 'ip', opts.table, affA, '{ 10.246.8.99 }']);

  // b goes away; a gains a second endpoint.
  const second = renderServiceRules(opts, servicePortRules([service('a', '10.96.8.10')], [slice('a', ['10.246.8.5', '10.246.8.7'])], 'n1'));
  const script = transition(second, before);
  assert.doesNotMatch(script, /delete table/);
  await nft(script);
  const after = tableObjects(second);
  const text = tableText();
  for (const chain of before.chains) assert.equal(text.includes(`chain ${chain} {`), after.chains.has(chain), `chain ${chain}`);
  assert.doesNotMatch(text, /10\.96\.8\.11/, "b's address is gone");
  assert.match(text, /10\.246\.8\.7:8080/, "a's new endpoint is in");
  assert.ok(after.sets.has(affA), "a's first endpoint keeps its affinity set");
  assert.match(listSet(affA), /10\.246\.8\.99/, 'the client keeps its endpoint');

  // After a failed swap the state is unknown: the next one deletes the table and makes it anew.
  const fresh = transition(first);
  assert.match(fresh, /^add table ip kubicle-unit-sync\ndelete table ip kubicle-unit-sync\n/);
  await nft(fresh);
  assert.match(tableText(), /10\.96\.8\.11/);
});

test('a rendering equal to the last one swapped in costs no swap; a changed one does', async (t) => {
  try {
    execFileSync('nft', ['--version']);
  } catch {
    return t.skip('nft is not installed (scripts/setup.sh installs it)');
  }
  t.after(() => removeTable(opts.table));
  let services = [service('a', '10.96.8.10')];
  let renders = 0;
  const sync = new TableSync(() => {
    renders++;
    return renderServiceRules(opts, servicePortRules(services, [slice('a', ['10.246.8.5'])], 'n1'));
  }, createLogger({}, () => {}));
  t.after(() => sync.stop());
  await sync.schedule();
  // Mark the kernel's table by hand: a swap would flush the mark away.
  execFileSync('nft', ['add', 'rule', 'ip', opts.table, 'services', 'counter', 'comment', '"hand-made"']);
  await sync.schedule();
  assert.equal(renders, 2, 'the state was rendered again');
  assert.match(tableText(), /hand-made/, 'the same rendering was not swapped in');
  services = [service('a', '10.96.8.10'), service('b', '10.96.8.11')];
  await sync.schedule();
  const text = tableText();
  assert.match(text, /10\.96\.8\.11/, 'the new Service is in');
  assert.doesNotMatch(text, /hand-made/, 'a changed rendering was swapped in');
});
