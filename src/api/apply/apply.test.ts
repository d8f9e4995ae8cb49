import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isCode, KubicleError } from '../../observe/errors.js';
import type { KubeObject } from '../object.js';
import type { ResourceType } from '../resource-type.js';
import { applyConfig, encodeManagedFields, trackUpdate, type Writer } from './managed-fields.js';
import { shapeFor } from './shape.js';
import { compare, fieldSetOf } from './typed.js';

const deployments = shapeFor({ group: 'apps', version: 'v1', kind: 'Deployment' } as ResourceType);
const services = shapeFor({ group: '', version: 'v1', kind: 'Service' } as ResourceType);
const t0 = '2026-01-01T00:00:00Z';
const t1 = '2026-01-01T00:01:00Z';
const kubectl: Writer = { manager: 'kubectl', apiVersion: 'apps/v1' };

function deployment(over: { replicas?: number; labels?: Record<string, string>; containers?: unknown[] } = {}): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', labels: over.labels ?? { app: 'web' } },
    spec: {
      replicas: over.replicas ?? 2,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { containers: over.containers ?? [{ name: 'app', image: 'nginx:1', ports: [{ containerPort: 80 }] }] },
      },
    },
  };
}

/** A live object as the store would hold it after `writer` created it with an update. */
function created(obj: KubeObject, writer: Writer): KubeObject {
  const live = structuredClone(obj);
  live.metadata.uid = 'u1';
  live.metadata.managedFields = trackUpdate(deployments, undefined, live, writer, t0, true);
  return live;
}

function applied(live: KubeObject | undefined, config: KubeObject, force = false, writer = kubectl): KubeObject {
  const out = applyConfig(deployments, live, config, writer, force, t1, true);
  out.object.metadata.managedFields = out.managedFields;
  return out.object;
}

function fieldsOf(obj: KubeObject, manager: string, operation = 'Apply'): Record<string, unknown> | undefined {
  return (obj.metadata.managedFields as { manager: string; operation: string; fieldsV1: Record<string, unknown> }[]).find((e) => e.manager === manager && e.operation === operation)
    ?.fieldsV1;
}

describe('field sets', () => {
  it('owns leaves, keyed items with ".", map keys, and atomic selectors whole', () => {
    const set = fieldSetOf(deployment(), deployments);
    assert.deepEqual(set['f:spec']['f:selector'], {});
    assert.deepEqual(set['f:metadata']['f:labels'], { 'f:app': {} });
    const containers = set['f:spec']['f:template']['f:spec']['f:containers'];
    assert.deepEqual(Object.keys(containers), ['k:{"name":"app"}']);
    assert.ok('.' in containers['k:{"name":"app"}']);
    // Container ports are keyed by port and protocol, the protocol defaulting to TCP.
    assert.deepEqual(Object.keys(containers['k:{"name":"app"}']['f:ports']), ['k:{"containerPort":80,"protocol":"TCP"}']);
  });

  it('keys Service ports by port and protocol and keeps the selector map atomic', () => {
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { selector: { app: 'x' }, ports: [{ port: 80, protocol: 'UDP' }] } };
    const set = fieldSetOf(svc, services);
    assert.deepEqual(set['f:spec']['f:selector'], {});
    assert.deepEqual(Object.keys(set['f:spec']['f:ports']), ['k:{"port":80,"protocol":"UDP"}']);
  });

  it('compares by key, not by position', () => {
    const a = deployment({ containers: [{ name: 'a', image: '1' }, { name: 'b', image: '1' }] });
    const b = deployment({ containers: [{ name: 'b', image: '2' }, { name: 'a', image: '1' }] });
    const c = compare(a, b, deployments);
    const path = c.modified['f:spec']['f:template']['f:spec']['f:containers'];
    assert.deepEqual(path, { 'k:{"name":"b"}': { 'f:image': {} } });
    assert.deepEqual(c.added, {});
    assert.deepEqual(c.removed, {});
  });
});

describe('updates', () => {
  it('a create owns every field it set except those the server sets', () => {
    const live = created(deployment(), { manager: 'kubectl-create', apiVersion: 'apps/v1' });
    const entry = (live.metadata.managedFields as Record<string, unknown>[])[0];
    assert.equal(entry.manager, 'kubectl-create');
    assert.equal(entry.operation, 'Update');
    assert.equal(entry.time, t0);
    const f = entry.fieldsV1 as Record<string, Record<string, unknown>>;
    assert.equal(f['f:apiVersion'], undefined);
    assert.equal(f['f:metadata']['f:name'], undefined);
    assert.equal(f['f:metadata']['f:uid'], undefined);
    assert.ok(f['f:spec']['f:replicas']);
  });

  it('an update takes changed fields from their owner; removed fields leave every entry', () => {
    const live = created(deployment(), { manager: 'creator', apiVersion: 'apps/v1' });
    const next = structuredClone(live);
    next.spec.replicas = 5;
    delete next.metadata.labels;
    const fields = trackUpdate(deployments, live, next, { manager: 'scaler', apiVersion: 'apps/v1' }, t1, true) as { manager: string; fieldsV1: Record<string, Record<string, unknown>> }[];
    const creator = fields.find((e) => e.manager === 'creator')?.fieldsV1;
    const scaler = fields.find((e) => e.manager === 'scaler')?.fieldsV1;
    assert.deepEqual(scaler, { 'f:spec': { 'f:replicas': {} } });
    assert.equal(creator?.['f:spec']['f:replicas'], undefined);
    assert.equal(creator?.['f:metadata'], undefined);
  });

  it('managedFields: [] clears the entries; the writer then owns only what it changed', () => {
    const live = created(deployment(), { manager: 'creator', apiVersion: 'apps/v1' });
    const next = structuredClone(live);
    next.metadata.managedFields = [];
    assert.equal(trackUpdate(deployments, live, next, { manager: 'x', apiVersion: 'apps/v1' }, t1, true), undefined);
  });

  it('keeps at most ten update entries, folding the oldest into ancient-changes', () => {
    const entries = Array.from({ length: 12 }, (_, i) => ({
      manager: `m${i}`,
      operation: 'Update' as const,
      apiVersion: 'apps/v1',
      time: `2026-01-01T00:00:${String(i).padStart(2, '0')}Z`,
      set: { [`f:f${i}`]: {} },
    }));
    const out = encodeManagedFields(entries) as { manager: string; fieldsV1: Record<string, unknown> }[];
    assert.equal(out.length, 10);
    const ancient = out.find((e) => e.manager === 'ancient-changes');
    assert.deepEqual(Object.keys(ancient?.fieldsV1 ?? {}).sort(), ['f:f0', 'f:f1', 'f:f2']);
  });
});

describe('apply', () => {
  it('creates with the configuration as the applier’s set', () => {
    const obj = applied(undefined, deployment());
    assert.equal(obj.spec.replicas, 2);
    const f = fieldsOf(obj, 'kubectl') as Record<string, Record<string, unknown>>;
    assert.ok(f['f:spec']['f:replicas']);
    assert.equal((obj.metadata.managedFields as unknown[]).length, 1);
  });

  it('conflicts with another owner of a field it changes, with upstream’s message and causes', () => {
    const live = applied(undefined, deployment());
    const scaled = structuredClone(live);
    scaled.spec.replicas = 5;
    scaled.metadata.managedFields = trackUpdate(deployments, live, scaled, { manager: 'kubectl-scale', apiVersion: 'apps/v1' }, t1, true);
    const err = (() => {
      try {
        applied(scaled, deployment({ replicas: 3 }));
      } catch (e) {
        return e;
      }
    })() as KubicleError;
    assert.ok(isCode(err, 'Conflict'));
    assert.equal(err.message, 'Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas');
    assert.deepEqual(err.causes, [{ reason: 'FieldManagerConflict', message: 'conflict with "kubectl-scale" using apps/v1', field: '.spec.replicas' }]);
    // Applying the value it already has is no conflict: the field is then shared.
    const shared = applied(scaled, deployment({ replicas: 5 }));
    assert.ok((fieldsOf(shared, 'kubectl-scale', 'Update') as Record<string, Record<string, unknown>>)['f:spec']['f:replicas']);
    // Forcing takes the field.
    const forced = applied(scaled, deployment({ replicas: 3 }), true);
    assert.equal(forced.spec.replicas, 3);
    assert.equal(fieldsOf(forced, 'kubectl-scale', 'Update'), undefined);
  });

  it('lists every conflict, grouped by manager', () => {
    const live = applied(undefined, deployment(), false, { manager: 'a', apiVersion: 'apps/v1' });
    assert.throws(
      () => applied(live, deployment({ replicas: 9, containers: [{ name: 'app', image: 'nginx:2', ports: [{ containerPort: 80 }] }] })),
      (e: KubicleError) => e.message === 'Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n- .spec.template.spec.containers[name="app"].image' && e.causes.length === 2,
    );
  });

  it('removes fields it applied before and no longer applies, unless another manager owns them', () => {
    const live = applied(undefined, deployment({ labels: { app: 'web', tier: 'front' } }));
    const dropped = applied(live, deployment({ labels: { app: 'web' } }));
    assert.deepEqual(dropped.metadata.labels, { app: 'web' });

    const other = applied(live, deployment({ labels: { tier: 'front' } }), false, { manager: 'other', apiVersion: 'apps/v1' });
    const kept = applied(other, deployment({ labels: { app: 'web' } }));
    assert.deepEqual(kept.metadata.labels, { app: 'web', tier: 'front' });
  });

  it('merges keyed lists item by item: a container another manager added stays', () => {
    const live = applied(undefined, deployment());
    const sidecar = applied(live, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { template: { spec: { containers: [{ name: 'log', image: 'busybox' }] } } } }, false, {
      manager: 'injector',
      apiVersion: 'apps/v1',
    });
    assert.deepEqual(
      sidecar.spec.template.spec.containers.map((c: { name: string }) => c.name),
      ['app', 'log'],
    );
    const again = applied(sidecar, deployment({ replicas: 4 }));
    assert.deepEqual(
      again.spec.template.spec.containers.map((c: { name: string }) => c.name),
      ['app', 'log'],
    );
    assert.equal(again.spec.replicas, 4);
  });

  it('lets kubectl take over fields its client-side apply set, and keeps last-applied current', () => {
    const config = deployment();
    const live = structuredClone(config);
    live.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(config) };
    live.metadata.managedFields = trackUpdate(deployments, undefined, live, { manager: 'kubectl-client-side-apply', apiVersion: 'apps/v1' }, t0, true);
    const out = applied(live, deployment({ replicas: 7 }));
    assert.equal(out.spec.replicas, 7);
    assert.equal(JSON.parse(out.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'] as string).spec.replicas, 7);
    // Another manager's change since the client-side apply still conflicts.
    const edited = structuredClone(live);
    edited.spec.replicas = 4;
    edited.metadata.managedFields = trackUpdate(deployments, live, edited, { manager: 'kubectl-edit', apiVersion: 'apps/v1' }, t1, true);
    assert.throws(() => applied(edited, deployment({ replicas: 7 })), KubicleError);
  });

  it('gives objects nobody applied to a before-first-apply owner', () => {
    const live = deployment();
    live.metadata.labels = { app: 'web', extra: 'x' };
    const out = applied(live, deployment());
    assert.ok(fieldsOf(out, 'before-first-apply', 'Update'));
    assert.equal(out.metadata.labels?.extra, 'x');
  });
});

describe('custom resources', () => {
  const schema = {
    type: 'object',
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: {
        type: 'object',
        properties: {
          routes: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['host', 'port'], items: { type: 'object', properties: { host: { type: 'string' }, port: { type: 'integer' }, weight: { type: 'integer' } } } },
          tags: { type: 'array', 'x-kubernetes-list-type': 'set', items: { type: 'string' } },
          args: { type: 'array', items: { type: 'string' } },
          selector: { type: 'object', 'x-kubernetes-map-type': 'atomic', additionalProperties: { type: 'string' } },
        },
      },
    },
  };
  const shape = shapeFor({ group: 'example.com', version: 'v1', kind: 'Route', schema } as unknown as ResourceType);

  it('reads list and map types from the structural schema, and metadata as ObjectMeta', () => {
    const set = fieldSetOf(
      {
        apiVersion: 'example.com/v1',
        kind: 'Route',
        metadata: { name: 'r', labels: { a: 'b' }, finalizers: ['x/y'] },
        spec: { routes: [{ host: 'a', port: 80, weight: 1 }], tags: ['blue'], args: ['-v'], selector: { k: 'v' } },
      },
      shape,
    );
    assert.deepEqual(Object.keys(set['f:spec']['f:routes']), ['k:{"host":"a","port":80}']);
    assert.deepEqual(set['f:spec']['f:tags'], { 'v:"blue"': {} });
    assert.deepEqual(set['f:spec']['f:args'], {});
    assert.deepEqual(set['f:spec']['f:selector'], {});
    assert.deepEqual(set['f:metadata']['f:finalizers'], { 'v:"x/y"': {} });
    assert.deepEqual(set['f:metadata']['f:labels'], { 'f:a': {} });
  });

  it('merges two appliers’ items of a keyed list and a set', () => {
    const writer = (manager: string): Writer => ({ manager, apiVersion: 'example.com/v1' });
    const cr = (routes: unknown[], tags: string[]) => ({ apiVersion: 'example.com/v1', kind: 'Route', metadata: { name: 'r' }, spec: { routes, tags } });
    const one = applyConfig(shape, undefined, cr([{ host: 'a', port: 80, weight: 1 }], ['blue']), writer('a'), false, t0, false);
    one.object.metadata.managedFields = one.managedFields;
    const two = applyConfig(shape, one.object, cr([{ host: 'b', port: 80, weight: 2 }], ['green']), writer('b'), false, t1, false);
    assert.deepEqual(
      two.object.spec.routes.map((r: { host: string }) => r.host),
      ['a', 'b'],
    );
    assert.deepEqual(two.object.spec.tags, ['blue', 'green']);
  });
});
