import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCode } from '../../observe/errors.js';
import { decodeKubernetesProtobuf } from './decode.js';
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
  assert.throws(() => decodeKubernetesProtobuf(envelope('v1', 'ConfigMap', cm)), (e) => isCode(e, 'UnsupportedMediaType') && /field 9 of ConfigMap/.test((e as Error).message));
  // An unknown field holding a zero value is what Go writes for unset fields: ignored.
  assert.deepEqual(decodeKubernetesProtobuf(envelope('v1', 'ConfigMap', Buffer.concat([msg(1, str(1, 'c')), num(9, 0)]))).metadata, { name: 'c' });
  assert.throws(() => decodeKubernetesProtobuf(envelope('v1', 'Pod', Buffer.alloc(0))), (e) => isCode(e, 'UnsupportedMediaType'));
  assert.throws(() => decodeKubernetesProtobuf(Buffer.from('{"json":true}')), (e) => isCode(e, 'BadRequest'));
  assert.throws(() => decodeKubernetesProtobuf(envelope('v1', 'ConfigMap', Buffer.from([0x0a, 0x7f]))), (e) => isCode(e, 'BadRequest'));
});
