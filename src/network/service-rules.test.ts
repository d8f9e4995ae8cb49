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

test('load balancer addresses: forwarded like node ports when in the pool, ignored outside it, one Service per address and port', async (t) => {
  const lb = (name: string, ip: string, extra: object = {}) => ({
    metadata: { namespace: 'd', name },
    spec: { type: 'LoadBalancer', clusterIP: `10.96.1.${name.length}`, ports: [{ port: 80, protocol: 'TCP', nodePort: 30100 + name.length }], ...extra },
    status: { loadBalancer: { ingress: [{ ip, ipMode: 'VIP' }] } },
  });
  const svcs = [
    lb('a', '127.241.0.2', { externalTrafficPolicy: 'Local' }),
    lb('bb', '127.0.0.1'),
    lb('ccc', '127.241.0.2'),
    lb('dddd', '127.241.0.4', { loadBalancerSourceRanges: ['198.51.100.0/24'] }),
    { ...lb('eeeee', '127.241.0.5'), status: { loadBalancer: { ingress: [{ ip: '127.241.0.5', ipMode: 'Proxy' }] } } },
  ];
  const eps = (svc: string) => slice(svc, [{ port: 8080, protocol: 'TCP' }], [{ addresses: ['10.246.9.5'], conditions: { ready: true }, nodeName: 'n1' }]);
  const rules = servicePortRules(svcs, svcs.map((s) => eps(s.metadata.name)), 'n1', '127.241.0.0/24');
  const by = Object.fromEntries(rules.map((r) => [r.key, r.loadBalancerIPs]));
  assert.deepEqual(by, { 'd/a::tcp': ['127.241.0.2'], 'd/bb::tcp': [], 'd/ccc::tcp': ['127.241.0.2'], 'd/dddd::tcp': ['127.241.0.4'], 'd/eeeee::tcp': [] });
  const script = renderServiceRules({ ...opts, loadBalancerPool: '127.241.0.0/24' }, rules);
  assert.equal(script.match(/127\.241\.0\.2 \. tcp \. 80/g)?.length, 1, 'a second Service showing the same address is not programmed');
  assert.match(script, /ip saddr 127\.0\.0\.0\/8 meta mark set meta mark \| 0x4000/, 'Local still masquerades loopback clients');
  assert.match(script, /chain lb-[0-9a-f]+ \{\n\t\tip saddr != \{ 198\.51\.100\.0\/24 \} drop/);
  assert.doesNotMatch(script, /127\.0\.0\.1 \./, 'an address outside the pool is never captured');
  try {
    execFileSync('nft', ['--version']);
  } catch {
    return t.skip('nft is not installed');
  }
  await nft(script, true);
});

test("an isolated (tenant) cluster's table: its pods' traffic only, endpoints inside its range, nothing malformed reaches nft", async (t) => {
  const hostile = [
    ...services,
    { metadata: { namespace: 'd', name: 'steal' }, spec: { clusterIP: '10.96.0.30', ports: [{ port: 80, protocol: 'TCP' }] } },
    { metadata: { namespace: 'd', name: 'inject' }, spec: { clusterIP: '10.96.0.31 } ; flush ruleset ; {', ports: [{ port: 80, protocol: 'TCP' }] } },
    { metadata: { namespace: 'd', name: 'badport' }, spec: { clusterIP: '10.96.0.32', ports: [{ port: '80 } flush ruleset', protocol: 'TCP' }] } },
  ];
  const hostileSlices = [
    ...slices,
    slice('steal', [{ port: 8080, protocol: 'TCP' }], [{ addresses: ['10.231.5.9'], conditions: { ready: true } }, { addresses: ['10.246.9.10"; flush ruleset'], conditions: { ready: true } }]),
  ];
  const isolated = { ...opts, isolated: true };
  const script = renderServiceRules(isolated, servicePortRules(hostile, hostileSlices, 'n1'));
  assert.doesNotMatch(script, /nat-output|filter-output/, 'the host keeps no route to any tenant cluster IP');
  assert.doesNotMatch(script, /30080|30053/, 'no node ports');
  assert.doesNotMatch(script, /10\.231\.5\.9/, "an endpoint outside the cluster's range is dropped");
  assert.match(script, /10\.96\.0\.30 \. tcp \. 80/, 'a Service left without usable endpoints refuses');
  assert.doesNotMatch(script, /flush ruleset|10\.96\.0\.32/, 'malformed addresses and ports are not rendered');
  assert.match(script, /iifname "kubunit0" ip daddr \. meta l4proto \. th dport @no-endpoint-services/, "refusals only for the cluster's own pods");
  try {
    execFileSync('nft', ['--version']);
  } catch {
    return t.skip('nft is not installed');
  }
  await nft(script, true);
});
