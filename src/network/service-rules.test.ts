import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { nft } from './host-net.js';
import { renderServiceRules, servicePortRules } from './service-rules.js';

const opts = { table: 'kubicle-unit-services', bridge: 'kubunit0', podCidr: '10.246.9.0/24', gateway: '10.246.9.1', nodeName: 'n1' };
const slice = (svc: string, ports: object[], endpoints: object[]) => ({ metadata: { namespace: 'd', name: `${svc}-1`, labels: { 'kubernetes.io/service-name': svc } }, addressType: 'IPv4', ports, endpoints });
const services = [
  { metadata: { namespace: 'd', name: 'web' }, spec: { type: 'NodePort', clusterIP: '10.96.0.20', sessionAffinity: 'ClientIP', ports: [{ name: 'http', port: 80, protocol: 'TCP', nodePort: 30080 }] } },
  { metadata: { namespace: 'd', name: 'empty' }, spec: { clusterIP: '10.96.0.21', ports: [{ port: 80, protocol: 'TCP' }] } },
  { metadata: { namespace: 'd', name: 'local' }, spec: { type: 'NodePort', externalTrafficPolicy: 'Local', clusterIP: '10.96.0.22', ports: [{ port: 53, protocol: 'UDP', nodePort: 30053 }] } },
  { metadata: { namespace: 'd', name: 'headless' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } },
  { metadata: { namespace: 'd', name: 'draining' }, spec: { clusterIP: '10.96.0.23', ports: [{ port: 80, protocol: 'TCP' }] } },
];
const slices = [
  slice('web', [{ name: 'http', port: 8080, protocol: 'TCP' }], [
    { addresses: ['10.246.9.5'], conditions: { ready: true }, nodeName: 'n1' },
    { addresses: ['10.246.9.6'], conditions: { ready: true }, nodeName: 'n1' },
    { addresses: ['10.246.9.7'], conditions: { ready: false }, nodeName: 'n1' },
  ]),
  slice('local', [{ port: 5353, protocol: 'UDP' }], [{ addresses: ['10.246.9.8'], conditions: { ready: true }, nodeName: 'n2' }]),
  slice('draining', [{ port: 80, protocol: 'TCP' }], [{ addresses: ['10.246.9.9'], conditions: { ready: false, serving: true, terminating: true }, nodeName: 'n1' }]),
];

test('service ports: ready endpoints, terminating ones as a fallback, none for headless', () => {
  const rules = servicePortRules(services, slices, 'n1');
  const by = Object.fromEntries(rules.map((r) => [r.key, r]));
  assert.deepEqual(Object.keys(by).sort(), ['d/draining::tcp', 'd/empty::tcp', 'd/local::udp', 'd/web:http:tcp']);
  assert.deepEqual(by['d/web:http:tcp'].endpoints.map((e) => `${e.ip}:${e.port}`), ['10.246.9.5:8080', '10.246.9.6:8080']);
  assert.equal(by['d/web:http:tcp'].affinitySeconds, 10800);
  assert.deepEqual(by['d/draining::tcp'].endpoints.map((e) => e.ip), ['10.246.9.9']);
  assert.equal(by['d/empty::tcp'].endpoints.length, 0);
  assert.equal(by['d/local::udp'].endpoints[0].local, false);
});

test('the rendered table parses in the real nft, refuses what has no endpoint, and keeps Local to local endpoints', async (t) => {
  try {
    execFileSync('nft', ['--version']);
  } catch {
    return t.skip('nft is not installed (scripts/setup.sh installs it)');
  }
  const script = renderServiceRules(opts, servicePortRules(services, slices, 'n1'));
  await nft(script, true);
  assert.match(script, /elements = \{ 10\.96\.0\.21 \. tcp \. 80/, 'the Service without endpoints is in the refusal set');
  assert.match(script, /no-endpoint-nodeports \{\n\t\ttype inet_proto \. inet_service\n\t\telements = \{ udp \. 30053 \}/, 'Local with no local endpoint: the node port refuses');
  assert.match(script, /numgen random mod 2 vmap/);
  assert.match(script, /dnat to 10\.246\.9\.5:8080/);
  assert.doesNotMatch(script, /10\.246\.9\.7/, 'not-ready endpoints get no rule');
  await assert.rejects(nft(script.replace('numgen random', 'numgen bogus'), true), (err: Error) => /nft:/.test(err.message));
});
