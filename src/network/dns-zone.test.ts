import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DnsZone } from './dns-zone.js';

const svc = (name: string, spec: object) => ({ metadata: { namespace: 'ns1', name }, spec });
const slice = (svcName: string, endpoints: object[], ports: object[] = [{ name: 'http', port: 8080, protocol: 'TCP' }]) => ({
  metadata: { namespace: 'ns1', name: `${svcName}-x`, labels: { 'kubernetes.io/service-name': svcName } },
  addressType: 'IPv4',
  endpoints,
  ports,
});

const zone = new DnsZone(
  'cluster.local',
  [
    svc('web', { clusterIP: '10.96.0.20', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }),
    svc('db', { clusterIP: 'None', ports: [{ name: 'http', port: 8080 }] }),
    svc('ext', { type: 'ExternalName', externalName: 'web.ns1.svc.cluster.local.' }),
  ],
  [
    slice('db', [
      { addresses: ['10.244.0.5'], hostname: 'db-0', conditions: { ready: true } },
      { addresses: ['10.244.0.6'], conditions: { ready: true } },
      { addresses: ['10.244.0.7'], conditions: { ready: false } },
    ]),
  ],
);
const data = (name: string, type: string) => zone.answer({ name, type: type as 'A' }).answers.map((a) => (a as { data: unknown }).data);

test('a Service with a cluster IP: A, SRV and PTR; case does not matter', () => {
  assert.deepEqual(data('web.ns1.svc.cluster.local', 'A'), ['10.96.0.20']);
  assert.deepEqual(data('WEB.Ns1.svc.cluster.local.', 'A'), ['10.96.0.20']);
  assert.deepEqual(data('_http._tcp.web.ns1.svc.cluster.local', 'SRV'), [{ priority: 0, weight: 100, port: 80, target: 'web.ns1.svc.cluster.local' }]);
  assert.deepEqual(data('20.0.96.10.in-addr.arpa', 'PTR'), ['web.ns1.svc.cluster.local']);
});

test('a headless Service: ready endpoints only, by hostname or dashed address', () => {
  assert.deepEqual(data('db.ns1.svc.cluster.local', 'A').sort(), ['10.244.0.5', '10.244.0.6']);
  assert.deepEqual(data('db-0.db.ns1.svc.cluster.local', 'A'), ['10.244.0.5']);
  assert.deepEqual(data('10-244-0-6.db.ns1.svc.cluster.local', 'A'), ['10.244.0.6']);
  assert.equal(zone.answer({ name: '10-244-0-7.db.ns1.svc.cluster.local', type: 'A' }).rcode, 3, 'not ready: no record');
  const srv = data('_http._tcp.db.ns1.svc.cluster.local', 'SRV') as { target: string; port: number }[];
  assert.deepEqual(srv.map((s) => `${s.target}:${s.port}`).sort(), ['10-244-0-6.db.ns1.svc.cluster.local:8080', 'db-0.db.ns1.svc.cluster.local:8080']);
  assert.deepEqual(data('5.0.244.10.in-addr.arpa', 'PTR'), ['db-0.db.ns1.svc.cluster.local']);
});

test('ExternalName answers a CNAME to any type; pod names spell their address', () => {
  const a = zone.answer({ name: 'ext.ns1.svc.cluster.local', type: 'A' });
  assert.deepEqual(a.answers.map((r) => [r.type, (r as { data: unknown }).data]), [['CNAME', 'web.ns1.svc.cluster.local']]);
  assert.deepEqual(data('10-1-2-3.ns1.pod.cluster.local', 'A'), ['10.1.2.3']);
  assert.equal(zone.answer({ name: '10-1-2-300.ns1.pod.cluster.local', type: 'A' }).rcode, 3);
});

test('NODATA for a known name of another type, NXDOMAIN for unknown names, REFUSED outside the zone', () => {
  const aaaa = zone.answer({ name: 'web.ns1.svc.cluster.local', type: 'AAAA' });
  assert.equal(aaaa.rcode, 0);
  assert.equal(aaaa.answers.length, 0);
  assert.equal(aaaa.authorities[0].type, 'SOA');
  assert.equal(zone.answer({ name: 'ns1.svc.cluster.local', type: 'A' }).rcode, 0, 'an empty non-terminal exists');
  const nx = zone.answer({ name: 'nope.ns1.svc.cluster.local', type: 'A' });
  assert.equal(nx.rcode, 3);
  assert.equal(nx.authorities[0].type, 'SOA');
  assert.equal(zone.answer({ name: 'example.com', type: 'A' }).rcode, 5);
  assert.equal(zone.answer({ name: '8.8.8.8.in-addr.arpa', type: 'PTR' }).rcode, 5);
  assert.equal(zone.answer({ name: 'cluster.local', type: 'SOA' }).answers[0].type, 'SOA');
});
