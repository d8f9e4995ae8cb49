import { KubicleError } from '../../observe/errors.js';
import { type FieldDef, kindMessages, messages } from './schema.js';
import { fields, signed, type WireValue } from './wire.js';

/**
 * Kubernetes protobuf request bodies ("k8s\0" + runtime.Unknown{typeMeta, raw}) into the JSON
 * object the rest of the server handles. A field this server has no definition for, with a
 * non-zero value, is refused with 415 rather than dropped: client-go then sends JSON for the
 * rest of its process, and nothing the client meant is lost.
 */
export const protobufMediaType = 'application/vnd.kubernetes.protobuf';
const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

type Obj = Record<string, unknown>;

function unsupported(detail: string): KubicleError {
  return new KubicleError('UnsupportedMediaType', `${detail}; this server decodes protobuf only for the objects of kubectl's create subcommands: send application/json`);
}

export function decodeKubernetesProtobuf(body: Buffer): Obj {
  if (body.length < 4 || !body.subarray(0, 4).equals(magic)) throw new KubicleError('BadRequest', 'protobuf body without the k8s\\0 prefix');
  const unknown = decodeMessage('Unknown', body.subarray(4), '');
  const tm = (unknown.typeMeta ?? {}) as Obj;
  const apiVersion = String(tm.apiVersion ?? '');
  const kind = String(tm.kind ?? '');
  const msg = kindMessages[`${apiVersion}/${kind}`];
  if (!msg) throw unsupported(`protobuf bodies of ${kind || 'unknown kind'} (${apiVersion || 'no apiVersion'}) are not supported`);
  const raw = Buffer.from(String(unknown.raw ?? ''), 'base64');
  return { apiVersion, kind, ...decodeMessage(msg, raw, '') };
}

function isZero(v: unknown): boolean {
  return v === '' || v === 0 || v === false || v === null || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
}

function decodeMessage(name: string, buf: Buffer, path: string): Obj {
  const defs = messages[name];
  const out: Obj = {};
  for (const { field, value } of fields(buf)) {
    const def = defs?.get(field);
    if (!def) {
      const empty = value.wire === 0 ? value.n === 0n : value.bytes.length === 0;
      if (empty) continue;
      throw unsupported(`protobuf field ${field} of ${name}${path ? ` at ${path}` : ''} is not known`);
    }
    if (def.type === 'drop') continue;
    const at = path ? `${path}.${def.name}` : def.name;
    if (def.type === 'map') {
      const entry = decodeEntry(def, value, at);
      const map = (out[def.name] ??= {}) as Obj;
      map[entry.key] = entry.value;
      continue;
    }
    const v = decodeValue(def.type, value, at);
    if (def.repeated) {
      ((out[def.name] ??= []) as unknown[]).push(v);
    } else if (def.inline) {
      Object.assign(out, v as Obj);
    } else if (def.keepZero || !isZero(v)) {
      out[def.name] = v;
    }
  }
  return out;
}

function decodeEntry(def: FieldDef, value: WireValue, path: string): { key: string; value: unknown } {
  if (value.wire !== 2) throw new KubicleError('BadRequest', `protobuf: ${path} is not a map entry`);
  let key = '';
  let v: unknown = def.mapValue === 'string' ? '' : null;
  for (const f of fields(value.bytes)) {
    if (f.field === 1) key = String(decodeValue('string', f.value, path));
    else if (f.field === 2) v = decodeValue(def.mapValue!, f.value, `${path}[${key}]`);
  }
  if (def.mapValue === 'bytes' && v === null) v = '';
  return { key, value: v };
}

function expectBytes(v: WireValue, path: string): Buffer {
  if (v.wire !== 2) throw new KubicleError('BadRequest', `protobuf: wrong wire type at ${path}`);
  return v.bytes;
}

function expectVarint(v: WireValue, path: string): bigint {
  if (v.wire !== 0) throw new KubicleError('BadRequest', `protobuf: wrong wire type at ${path}`);
  return v.n;
}

function decodeValue(type: string, v: WireValue, path: string): unknown {
  switch (type) {
    case 'string':
      return expectBytes(v, path).toString('utf8');
    case 'bytes':
      return expectBytes(v, path).toString('base64');
    case 'int32':
    case 'int64':
      return signed(expectVarint(v, path));
    case 'bool':
      return expectVarint(v, path) !== 0n;
    case 'Time': {
      let seconds = 0;
      for (const f of fields(expectBytes(v, path))) if (f.field === 1) seconds = signed(expectVarint(f.value, path));
      // Go's zero time marshals as null in JSON.
      return seconds === 0 ? null : new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
    }
    case 'Quantity': {
      let s = '';
      for (const f of fields(expectBytes(v, path))) if (f.field === 1) s = expectBytes(f.value, path).toString('utf8');
      return s;
    }
    case 'IntOrString': {
      let kind = 0;
      let int = 0;
      let str = '';
      for (const f of fields(expectBytes(v, path))) {
        if (f.field === 1) kind = signed(expectVarint(f.value, path));
        else if (f.field === 2) int = signed(expectVarint(f.value, path));
        else if (f.field === 3) str = expectBytes(f.value, path).toString('utf8');
      }
      return kind === 1 ? str : int;
    }
    default:
      if (!messages[type]) throw unsupported(`protobuf message ${type} at ${path} is not known`);
      return decodeMessage(type, expectBytes(v, path), path);
  }
}
