import { KubicleError } from '../../observe/errors.js';
import { kindMessages, messages } from './messages.js';
import { fields, readVarint, signed, type WireValue } from './wire.js';

/**
 * Kubernetes protobuf request bodies ("k8s\0" + runtime.Unknown{typeMeta, raw}) into the JSON
 * object the rest of the server handles, for every built-in kind whose Go type kubectl links
 * (messages.ts, generated). A field this server has no definition for, with a non-zero value,
 * is refused with 415 rather than dropped: client-go then sends JSON for the rest of its
 * process, and nothing the client meant is lost.
 */
export const protobufMediaType = 'application/vnd.kubernetes.protobuf';
const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

type Obj = Record<string, unknown>;

function unsupported(detail: string): KubicleError {
  return new KubicleError('UnsupportedMediaType', `${detail}; this server decodes protobuf only for the built-in kinds kubectl knows: send application/json`);
}

export function decodeKubernetesProtobuf(body: Buffer): Obj {
  if (body.length < 4 || !body.subarray(0, 4).equals(magic)) throw new KubicleError('BadRequest', 'protobuf body without the k8s\\0 prefix');
  const unknown = decodeMessage('io.k8s.apimachinery.pkg.runtime.Unknown', body.subarray(4), '');
  const apiVersion = String(unknown.apiVersion ?? '');
  const kind = String(unknown.kind ?? '');
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
    const def = defs?.[field];
    if (!def) {
      const empty = value.wire === 0 ? value.n === 0n : value.bytes.length === 0;
      if (empty) continue;
      throw unsupported(`protobuf field ${field} of ${name}${path ? ` at ${path}` : ''} is not known`);
    }
    const at = path ? `${path}.${def.name}` : def.name;
    if (def.map) {
      const entry = decodeEntry(def.map, value, at);
      const map = (out[def.name] ??= {}) as Obj;
      map[entry.key] = entry.value;
      continue;
    }
    const type = def.type ?? 'string';
    if (def.repeated) {
      const list = (out[def.name] ??= []) as unknown[];
      // Repeated numbers may come packed (one length-delimited run) or one per field.
      if (value.wire === 2 && packable.has(type)) for (const n of packed(type, value.bytes, at)) list.push(n);
      else list.push(decodeValue(type, value, at));
      continue;
    }
    const v = decodeValue(type, value, at);
    if (def.inline) Object.assign(out, v as Obj);
    else if (def.keepZero || !isZero(v)) out[def.name] = v;
  }
  return out;
}

const packable = new Set(['int32', 'int64', 'bool', 'double', 'float']);

function* packed(type: string, bytes: Buffer, path: string): Generator<unknown> {
  if (type === 'double' || type === 'float') {
    const size = type === 'double' ? 8 : 4;
    if (bytes.length % size) throw new KubicleError('BadRequest', `protobuf: packed ${type}s of odd length at ${path}`);
    for (let i = 0; i < bytes.length; i += size) yield size === 8 ? bytes.readDoubleLE(i) : bytes.readFloatLE(i);
    return;
  }
  for (let i = 0; i < bytes.length; ) {
    const [n, next] = readVarint(bytes, i);
    i = next;
    yield type === 'bool' ? n !== 0n : signed(n);
  }
}

function decodeEntry(valueType: string, value: WireValue, path: string): { key: string; value: unknown } {
  if (value.wire !== 2) throw new KubicleError('BadRequest', `protobuf: ${path} is not a map entry`);
  let key = '';
  let v: unknown;
  for (const f of fields(value.bytes)) {
    if (f.field === 1) key = String(decodeValue('string', f.value, path));
    else if (f.field === 2) v = decodeValue(valueType, f.value, `${path}[${key}]`);
  }
  // An entry without a value holds the type's zero value.
  if (v === undefined) v = valueType === 'string' || valueType === 'bytes' || valueType === 'Quantity' ? '' : valueType === 'StringList' ? [] : messages[valueType] ? {} : null;
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

/** google.protobuf.Timestamp-shaped {seconds=1, nanos=2}, as meta/v1 Time and MicroTime marshal. */
function timestamp(v: WireValue, path: string): { seconds: number; nanos: number } {
  let seconds = 0;
  let nanos = 0;
  for (const f of fields(expectBytes(v, path))) {
    if (f.field === 1) seconds = signed(expectVarint(f.value, path));
    else if (f.field === 2) nanos = signed(expectVarint(f.value, path));
  }
  return { seconds, nanos };
}

/** time.Duration's String(): "1h2m3.5s", "1.5ms", "0s". */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const trim = (x: number) => String(Number(x.toFixed(9)));
  let u = Math.abs(ns);
  let out: string;
  if (u < 1e9) {
    const [unit, div] = u < 1e3 ? ['ns', 1] : u < 1e6 ? ['µs', 1e3] : ['ms', 1e6];
    out = `${trim(u / div)}${unit}`;
  } else {
    const h = Math.floor(u / 3.6e12);
    u -= h * 3.6e12;
    const m = Math.floor(u / 6e10);
    u -= m * 6e10;
    const sec = `${trim(u / 1e9)}s`;
    out = h ? `${h}h${m}m${sec}` : m ? `${m}m${sec}` : sec;
  }
  return ns < 0 ? `-${out}` : out;
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
    case 'double':
    case 'float': {
      const size = type === 'double' ? 8 : 4;
      if (v.wire !== (size === 8 ? 1 : 5)) throw new KubicleError('BadRequest', `protobuf: wrong wire type at ${path}`);
      return size === 8 ? v.bytes.readDoubleLE(0) : v.bytes.readFloatLE(0);
    }
    case 'Time': {
      const { seconds } = timestamp(v, path);
      // Go's zero time marshals as null in JSON.
      return seconds === 0 ? null : new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
    }
    case 'MicroTime': {
      const { seconds, nanos } = timestamp(v, path);
      if (seconds === 0 && nanos === 0) return null;
      const micros = String(Math.floor(nanos / 1000)).padStart(6, '0');
      return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, `.${micros}Z`);
    }
    case 'Duration': {
      let ns = 0;
      for (const f of fields(expectBytes(v, path))) if (f.field === 1) ns = signed(expectVarint(f.value, path));
      return goDuration(ns);
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
    case 'RawJSON': {
      // RawExtension and FieldsV1 carry JSON text in their field 1.
      let raw: Buffer | undefined;
      for (const f of fields(expectBytes(v, path))) if (f.field === 1) raw = expectBytes(f.value, path);
      if (!raw?.length) return null;
      try {
        return JSON.parse(raw.toString('utf8'));
      } catch {
        throw new KubicleError('BadRequest', `protobuf: ${path} does not hold JSON`);
      }
    }
    case 'StringList': {
      const items: string[] = [];
      for (const f of fields(expectBytes(v, path))) if (f.field === 1) items.push(expectBytes(f.value, path).toString('utf8'));
      return items;
    }
    default:
      if (!messages[type]) throw unsupported(`protobuf message ${type} at ${path} is not known`);
      return decodeMessage(type, expectBytes(v, path), path);
  }
}
