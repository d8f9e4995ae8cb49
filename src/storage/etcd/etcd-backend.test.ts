import { after, before } from 'node:test';
import { type EtcdProcess, startEtcd } from '../../../test/support/etcd.js';
import { backendConformance } from '../conformance/conformance.js';
import { EtcdBackend } from './etcd-backend.js';

let etcd: EtcdProcess;
let n = 0;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});
// Each test gets its own key prefix in the one etcd, as tenant stores will.
backendConformance('EtcdBackend', async () => new EtcdBackend({ endpoints: [etcd.endpoint], root: `/t${n++}-${Date.now()}` }));
