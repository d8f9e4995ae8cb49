import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseHost, type HostFit } from './placement.js';

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
