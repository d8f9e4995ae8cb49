import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../../observe/errors.js';
import { decodeKubernetesProtobuf, goDuration } from './decode.js';
import { lengthDelimited, varintField } from './wire.js';

const str = (field: number, s: string | Buffer): Buffer => lengthDelimited(field, Buffer.isBuffer(s) ? s : Buffer.from(s));
const num = varintField;
const msg = (field: number, ...parts: Buffer[]) => str(field, Buffer.concat(parts));
const envelope = (apiVersion: string, kind: string, raw: Buffer) =>
  Buffer.concat([Buffer.from([0x6b, 0x38, 0x73, 0]), msg(1, str(1, apiVersion), str(2, kind)), str(2, raw)]);

test('decodes an object, dropping zero values of non-pointer fields and keeping pointer zeros', () => {
  const deployment = Buffer.concat([
    msg(1, str(1, 'd'), str(2, ''), num(7, 0), msg(11, str(1, 'app'), str(2, 'd'))),
    msg(2, num(1, 0), num(5, 0), msg(3, msg(2, msg(2, str(1, 'c'), str(2, 'img'), msg(6, num(2, 0), num(3, 80)))))),
  ]);
  const obj = decodeKubernetesProtobuf(envelope('apps/v1', 'Deployment', deployment));
  assert.deepEqual(obj, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd', labels: { app: 'd' } },
    spec: { replicas: 0, template: { spec: { containers: [{ name: 'c', image: 'img', ports: [{ containerPort: 80 }] }] } } },
  });
});

test('secrets carry bytes as base64; negative int64 survives', () => {
  const secret = Buffer.concat([msg(1, str(1, 's'), num(10, -1)), msg(2, str(1, 'k'), str(2, Buffer.from([0, 1, 2])))]);
  const obj = decodeKubernetesProtobuf(envelope('v1', 'Secret', secret));
  assert.deepEqual(obj.data, { k: 'AAEC' });
  assert.equal((obj.metadata as { deletionGracePeriodSeconds: number }).deletionGracePeriodSeconds, -1);
});

test('unknown fields with values, unknown kinds and bad framing are refused', () => {
  const cm = Buffer.concat([msg(1, str(1, 'c')), str(9, 'surprise')]);
  assert.throws(() => decodeKubernetesProtobuf(envelope('v1', 'ConfigMap', cm)), (e) => isCode(e, 'UnsupportedMediaType') && /field 9 of io.k8s.api.core.v1.ConfigMap/.test((e as Error).message));
  // An unknown field holding a zero value is what Go writes for unset fields: ignored.
  assert.deepEqual(decodeKubernetesProtobuf(envelope('v1', 'ConfigMap', Buffer.concat([msg(1, str(1, 'c')), num(9, 0)]))).metadata, { name: 'c' });
  // Custom resource definitions' Go types are not in kubectl, so not in the generated messages.
  assert.throws(() => decodeKubernetesProtobuf(envelope('apiextensions.k8s.io/v1', 'CustomResourceDefinition', Buffer.alloc(0))), (e) => isCode(e, 'UnsupportedMediaType'));
  assert.throws(() => decodeKubernetesProtobuf(envelope('example.com/v1', 'Widget', Buffer.alloc(0))), (e) => isCode(e, 'UnsupportedMediaType'));
  assert.throws(() => decodeKubernetesProtobuf(Buffer.from('{"json":true}')), (e) => isCode(e, 'BadRequest'));
  assert.throws(() => decodeKubernetesProtobuf(envelope('v1', 'ConfigMap', Buffer.from([0x0a, 0x7f]))), (e) => isCode(e, 'BadRequest'));
});

test('every built-in kind decodes, with the types upstream marshals by hand', () => {
  // A Pod: resources as a map of Quantity, packed supplemental groups, an int-or-string port.
  const pod = Buffer.concat([
    msg(1, str(1, 'p')),
    msg(
      2,
      msg(2, str(1, 'c'), str(2, 'img'), msg(8, msg(1, str(1, 'cpu'), msg(2, str(1, '250m'))))),
      msg(14, str(4, Buffer.from([1, 0xe8, 0x07]))), // supplementalGroups [1, 1000], packed
    ),
  ]);
  const p = decodeKubernetesProtobuf(envelope('v1', 'Pod', pod)) as { spec: { containers: { resources: object }[]; securityContext: object } };
  assert.deepEqual(p.spec.containers[0].resources, { limits: { cpu: '250m' } });
  assert.deepEqual(p.spec.securityContext, { supplementalGroups: [1, 1000] });

  // A Lease's MicroTime keeps microseconds.
  const lease = Buffer.concat([msg(1, str(1, 'l')), msg(2, msg(4, num(1, 1_700_000_000), num(2, 123_456_000)))]);
  assert.deepEqual((decodeKubernetesProtobuf(envelope('coordination.k8s.io/v1', 'Lease', lease)) as { spec: object }).spec, { renewTime: '2023-11-14T22:13:20.123456Z' });

  // A ControllerRevision's data is JSON text inside a RawExtension.
  const rev = Buffer.concat([msg(1, str(1, 'r')), msg(2, str(1, '{"spec":{"x":1}}')), num(3, 2)]);
  assert.deepEqual(decodeKubernetesProtobuf(envelope('apps/v1', 'ControllerRevision', rev)), { apiVersion: 'apps/v1', kind: 'ControllerRevision', metadata: { name: 'r' }, data: { spec: { x: 1 } }, revision: 2 });
  assert.throws(() => decodeKubernetesProtobuf(envelope('apps/v1', 'ControllerRevision', msg(2, str(1, '{nope')))), (e) => isCode(e, 'BadRequest'));

  // A SubjectAccessReview's extra: map of string to a list (ExtraValue).
  const sar = msg(2, str(3, 'alice'), msg(5, str(1, 'scopes'), msg(2, str(1, 'a'), str(1, 'b'))));
  assert.deepEqual((decodeKubernetesProtobuf(envelope('authorization.k8s.io/v1', 'SubjectAccessReview', sar)) as { spec: object }).spec, { user: 'alice', extra: { scopes: ['a', 'b'] } });
});

test('Go duration text', () => {
  assert.equal(goDuration(0), '0s');
  assert.equal(goDuration(1_500_000), '1.5ms');
  assert.equal(goDuration(90e9), '1m30s');
  assert.equal(goDuration(3600e9), '1h0m0s');
  assert.equal(goDuration(-2.5e9), '-2.5s');
});
