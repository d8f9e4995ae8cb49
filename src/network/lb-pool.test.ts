import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Cidr, parseCidr } from '../api/ipv4.js';
import { assignLoadBalancerIPs } from './lb-pool.js';

const pool = parseCidr('127.241.0.0/29') as Cidr; // usable .1–.6; .1 reserved for ingress
const svc = (name: string, at: string, extra: { spec?: object; status?: object; annotations?: object } = {}) => ({
  metadata: { namespace: 'd', name, creationTimestamp: at, annotations: extra.annotations },
  spec: { type: 'LoadBalancer', ...extra.spec },
  status: extra.status ?? {},
});
const ips = (m: Map<string, unknown>) => Object.fromEntries([...m].map(([k, v]) => [k, (v as { ip?: string; error?: string }).ip ?? (v as { error: string }).error]));

test('oldest first, lowest free address, never the network, broadcast or reserved ones', () => {
  const got = assignLoadBalancerIPs([svc('b', '2026-01-02T00:00:00Z'), svc('a', '2026-01-01T00:00:00Z'), { ...svc('c', '2026-01-01T00:00:00Z'), spec: { type: 'NodePort' } }], pool, ['127.241.0.1']);
  assert.deepEqual(ips(got), { 'd/a': '127.241.0.2', 'd/b': '127.241.0.3' });
});

test('an address in status is kept even when an older Service has none yet', () => {
  const got = assignLoadBalancerIPs([svc('old', '2026-01-01T00:00:00Z'), svc('new', '2026-01-02T00:00:00Z', { status: { loadBalancer: { ingress: [{ ip: '127.241.0.2' }] } } })], pool, ['127.241.0.1']);
  assert.deepEqual(ips(got), { 'd/new': '127.241.0.2', 'd/old': '127.241.0.3' });
});

test('spec.loadBalancerIP: granted when in the pool and free; otherwise the reason', () => {
  const got = assignLoadBalancerIPs(
    [
      svc('want', '2026-01-01T00:00:00Z', { spec: { loadBalancerIP: '127.241.0.5' } }),
      svc('dup', '2026-01-02T00:00:00Z', { spec: { loadBalancerIP: '127.241.0.5' } }),
      svc('out', '2026-01-03T00:00:00Z', { spec: { loadBalancerIP: '127.9.0.5' } }),
      svc('bcast', '2026-01-03T00:00:00Z', { spec: { loadBalancerIP: '127.241.0.7' } }),
    ],
    pool,
    ['127.241.0.1'],
  );
  assert.deepEqual(ips(got), {
    'd/want': '127.241.0.5',
    'd/dup': 'spec.loadBalancerIP 127.241.0.5 is already in use by d/want',
    'd/out': 'spec.loadBalancerIP 127.9.0.5 is not in the load balancer pool 127.241.0.0/29',
    'd/bcast': 'spec.loadBalancerIP 127.241.0.7 is not in the load balancer pool 127.241.0.0/29',
  });
});

test('an exhausted pool says so; another class and a bad PROXY protocol annotation are not served', () => {
  const many = Array.from({ length: 7 }, (_, i) => svc(`s${i}`, `2026-01-01T00:00:0${i}Z`));
  const got = assignLoadBalancerIPs(
    [...many, svc('other', '2026-01-01T00:00:00Z', { spec: { loadBalancerClass: 'example.com/lb' } }), svc('pp', '2026-01-01T00:00:00Z', { annotations: { 'service.kubicle.io/proxy-protocol': 'v3' } })],
    pool,
    ['127.241.0.1'],
  );
  assert.equal(ips(got)['d/s4'], '127.241.0.6');
  assert.equal(ips(got)['d/s5'], 'no available IPs in the load balancer pool 127.241.0.0/29');
  assert.equal(got.has('d/other'), false);
  assert.equal(ips(got)['d/pp'], 'annotation service.kubicle.io/proxy-protocol must be "v1" or "v2", not "v3"');
  const proxied = assignLoadBalancerIPs([svc('pp', '2026-01-01T00:00:00Z', { annotations: { 'service.kubicle.io/proxy-protocol': 'v2' } })], pool, []);
  assert.deepEqual(proxied.get('d/pp'), { ip: '127.241.0.1', ipMode: 'Proxy' });
});
