import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseHost, chooseHosts, type HostFit } from './placement.js';

const Gi = 2 ** 30;
const host = (name: string, over: Partial<HostFit> = {}): HostFit => ({
  name,
  ready: true,
  unschedulable: false,
  runtimes: ['runc', 'microvm'],
  capacity: { cpuMillis: 4000, memoryBytes: 8 * Gi },
  allocated: { cpuMillis: 0, memoryBytes: 0 },
  ...over,
});
const cp = { cpuMillis: 1000, memoryBytes: 0.5 * Gi, runtime: 'runc' };

test('the least allocated host that fits takes the workload; equal ones go by name', () => {
  assert.deepEqual(chooseHost(cp, [host('b'), host('a')]), { host: 'a' });
  assert.deepEqual(chooseHost(cp, [host('a', { allocated: { cpuMillis: 1000, memoryBytes: 0 } }), host('b')]), { host: 'b' });
  // The fuller share decides: a's memory is fuller than b's CPU.
  const a = host('a', { allocated: { cpuMillis: 0, memoryBytes: 6 * Gi } });
  const b = host('b', { allocated: { cpuMillis: 2000, memoryBytes: 0 } });
  assert.deepEqual(chooseHost(cp, [a, b]), { host: 'b' });
  // Larger hosts take more before they are as full.
  assert.deepEqual(chooseHost(cp, [host('a', { allocated: { cpuMillis: 2000, memoryBytes: 0 } }), host('b', { capacity: { cpuMillis: 2000, memoryBytes: 8 * Gi }, allocated: { cpuMillis: 500, memoryBytes: 0 } })]), { host: 'a' });
});

test('hosts that cannot take it are passed over, and with none left each reason is counted', () => {
  const hosts = [
    host('down', { ready: false }),
    host('cordoned', { unschedulable: true }),
    host('vmonly', { runtimes: ['microvm'] }),
    host('busy', { allocated: { cpuMillis: 3500, memoryBytes: 0 } }),
    host('full', { allocated: { cpuMillis: 0, memoryBytes: 7.75 * Gi } }),
  ];
  assert.deepEqual(chooseHost(cp, hosts), { refusal: '0/5 hosts can take it: 1 insufficient cpu, 1 insufficient memory, 1 no runc runtime, 1 not ready, 1 unschedulable' });
  assert.deepEqual(chooseHost(cp, [...hosts, host('ok', { allocated: { cpuMillis: 3000, memoryBytes: 7.5 * Gi } })]), { host: 'ok' }, 'exactly full still fits');
  assert.deepEqual(chooseHost(cp, []), { refusal: '0/0 hosts can take it' });
});

test('replicas go to hosts of their own, spread over zones while zones allow', () => {
  const zoned = (name: string, zone: string, over: Partial<HostFit> = {}) => host(name, { zone, ...over });
  // b is the emptiest after a, but in a's zone: the second replica goes to the other zone.
  const hosts = [zoned('a', 'z1'), zoned('b', 'z1', { allocated: { cpuMillis: 100, memoryBytes: 0 } }), zoned('c', 'z2', { allocated: { cpuMillis: 2000, memoryBytes: 0 } })];
  assert.deepEqual(chooseHosts(cp, hosts, 2), { hosts: ['a', 'c'] });
  // With every zone holding one, the third takes the host left.
  assert.deepEqual(chooseHosts(cp, hosts, 3), { hosts: ['a', 'c', 'b'] });
  // A zone without room does not count: the replicas share a zone rather than wait.
  assert.deepEqual(chooseHosts(cp, [zoned('a', 'z1'), zoned('b', 'z1'), zoned('c', 'z2', { ready: false })], 2), { hosts: ['a', 'b'] });
  // Each replica is weighed with those placed before it.
  assert.deepEqual(chooseHosts({ ...cp, cpuMillis: 3000 }, [host('a'), host('b', { capacity: { cpuMillis: 8000, memoryBytes: 8 * Gi } })], 2), { hosts: ['b', 'a'] });
  assert.deepEqual(chooseHosts(cp, [host('a')], 1), { hosts: ['a'] });
});

test('replicas that outnumber the hosts able to take them are refused as a whole, saying which', () => {
  assert.deepEqual(chooseHosts(cp, [host('a'), host('b')], 3), { refusal: 'replica 3 of 3: 0/2 hosts can take it: 2 already running a replica' });
  assert.deepEqual(chooseHosts(cp, [host('a'), host('b', { unschedulable: true })], 2), { refusal: 'replica 2 of 2: 0/2 hosts can take it: 1 already running a replica, 1 unschedulable' });
  assert.deepEqual(chooseHosts(cp, [host('a', { ready: false })], 1), { refusal: '0/1 hosts can take it: 1 not ready' });
});

test('a replica replacing one on a lost host avoids the hosts and zones of those that stay', () => {
  const zoned = (name: string, zone: string, over: Partial<HostFit> = {}) => host(name, { zone, ...over });
  // Replica 0 stays on a (z1); replica 1's host c (z2) is lost: d in z2 beats the emptier b, which shares a's zone.
  const hosts = [zoned('a', 'z1'), zoned('b', 'z1'), zoned('c', 'z2', { ready: false }), zoned('d', 'z2', { allocated: { cpuMillis: 2000, memoryBytes: 0 } })];
  assert.deepEqual(chooseHosts(cp, hosts, 1, ['a']), { hosts: ['d'] });
  // Never beside a replica that stays, even when that host is the emptiest.
  assert.deepEqual(chooseHosts(cp, [host('a'), host('b', { allocated: { cpuMillis: 2000, memoryBytes: 0 } })], 1, ['a']), { hosts: ['b'] });
  assert.deepEqual(chooseHosts(cp, [host('a'), host('c', { ready: false })], 1, ['a']), { refusal: 'replica 2 of 2: 0/2 hosts can take it: 1 already running a replica, 1 not ready' });
});
