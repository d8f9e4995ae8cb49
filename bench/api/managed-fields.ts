import { applyConfig, trackUpdate } from '../../src/api/apply/managed-fields.js';
import { shapeFor } from '../../src/api/apply/shape.js';
import type { KubeObject } from '../../src/api/object.js';
import type { ResourceType } from '../../src/api/resource-type.js';
import { runBench } from '../main.js';
import { f1 } from './stats.js';

/**
 * bench/api managed-fields: the CPU server-side apply's bookkeeping adds to each write, in
 * process. Every write now computes managedFields (what changed, who owns it); the floor is what
 * the store already spends on the same object per write: one JSON encode and one decode.
 * Cases: a pod create, a kubelet-style pod status update, and a kubectl re-apply of a Deployment
 * changing one field. Median of 5 rounds.
 */
const N = Number(process.env.BENCH_N ?? 2000);
const pods = shapeFor({ group: '', version: 'v1', kind: 'Pod' } as ResourceType);
const deployments = shapeFor({ group: 'apps', version: 'v1', kind: 'Deployment' } as ResourceType);
const when = '2026-11-24T00:00:00Z';

function pod(i: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `web-${i}`, namespace: 'default', uid: `u${i}`, labels: { app: 'web', 'pod-template-hash': 'abc123' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-abc123', uid: 'rs', controller: true, blockOwnerDeletion: true }] },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'nginx:1.25',
          ports: [{ containerPort: 80, protocol: 'TCP' }],
          env: [{ name: 'MODE', value: 'prod' }],
          resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '128Mi' } },
          volumeMounts: [{ name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      volumes: [{ name: 'kube-api-access', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      schedulerName: 'default-scheduler',
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
      priority: 0,
      enableServiceLinks: true,
    },
    status: { phase: 'Pending', qosClass: 'Burstable' },
  };
}

function running(p: KubeObject): KubeObject {
  const next = structuredClone(p);
  next.status = {
    phase: 'Running',
    qosClass: 'Burstable',
    hostIP: '10.0.0.1',
    podIP: '10.244.0.7',
    podIPs: [{ ip: '10.244.0.7' }],
    startTime: when,
    conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({ type, status: 'True', lastTransitionTime: when })),
    containerStatuses: [{ name: 'app', ready: true, started: true, restartCount: 0, image: 'nginx:1.25', imageID: 'sha256:1', containerID: 'runc://1', state: { running: { startedAt: when } } }],
  };
  return next;
}

function deployment(replicas: number): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', labels: { app: 'web' } },
    spec: { replicas, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: pod(0).spec } },
  };
}

/** Median µs per call of `fn` over 5 rounds of N calls. */
function time(fn: (i: number) => unknown): number {
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    for (let i = 0; i < N; i++) fn(i);
    rounds.push(((performance.now() - t) * 1000) / N);
  }
  return rounds.sort((a, b) => a - b)[2];
}

async function main(): Promise<void> {
  const created = pod(0);
  created.metadata.managedFields = trackUpdate(pods, undefined, created, { manager: 'kube-controller-manager', apiVersion: 'v1' }, when, true);
  const bound = structuredClone(created);
  bound.spec.nodeName = 'node-1';
  const status = running(bound);
  const live = structuredClone(deployment(2));
  const first = applyConfig(deployments, undefined, deployment(2), { manager: 'kubectl', apiVersion: 'apps/v1' }, false, when, true);
  live.metadata.managedFields = first.managedFields;

  const fresh = Array.from({ length: N }, (_, i) => pod(i));
  const cases: [string, KubeObject, (i: number) => unknown][] = [
    ['pod create', created, (i) => trackUpdate(pods, undefined, fresh[i], { manager: 'kube-controller-manager', apiVersion: 'v1' }, when, true)],
    ['pod status update', status, () => trackUpdate(pods, bound, status, { manager: 'kubelet', apiVersion: 'v1', subresource: 'status' }, when, true)],
    ['deployment re-apply', live, (i) => applyConfig(deployments, live, deployment(3 + (i % 2)), { manager: 'kubectl', apiVersion: 'apps/v1' }, false, when, true)],
  ];
  console.log(`managedFields bookkeeping per write, median of 5 rounds of ${N} (µs per write)\n`);
  console.log('| write | managedFields | floor: JSON encode + decode of the object | ratio |');
  console.log('|---|---|---|---|');
  for (const [name, obj, fn] of cases) {
    const floor = time(() => JSON.parse(JSON.stringify(obj)));
    const cost = time(fn);
    console.log(`| ${name} | ${f1(cost)} µs | ${f1(floor)} µs | ${f1(cost / floor)}× |`);
  }
}

runBench(main);
