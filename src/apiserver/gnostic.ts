/**
 * Swagger 2.0 documents in gnostic's protobuf form (openapi_v2.Document, the only form kubectl
 * reads /openapi/v2 in). Field numbers are those of gnostic's OpenAPIv2.proto. Only what
 * openapi-v2.ts produces is encoded; a vendor extension's or default's value travels as YAML
 * text, for which JSON text serves (YAML is a superset of JSON). Proto3 leaves out empty
 * strings, false and absent messages, so they are not written.
 */
import { lengthDelimited, varint, varintField } from './protobuf/wire.js';

type Obj = Record<string, unknown>;

/** A message being written; proto3 leaves out zero values, so the typed writers skip them. */
class Writer {
  private readonly parts: Buffer[] = [];

  bytes(field: number, b: Buffer): this {
    this.parts.push(lengthDelimited(field, b));
    return this;
  }

  string(field: number, s: unknown): this {
    if (typeof s === 'string' && s !== '') this.bytes(field, Buffer.from(s));
    return this;
  }

  strings(field: number, list: unknown): this {
    if (Array.isArray(list)) for (const s of list) this.bytes(field, Buffer.from(String(s)));
    return this;
  }

  bool(field: number, b: unknown): this {
    if (b === true) this.parts.push(varintField(field, 1));
    return this;
  }

  int(field: number, n: unknown): this {
    if (typeof n === 'number' && n !== 0) this.parts.push(varintField(field, Math.trunc(n)));
    return this;
  }

  double(field: number, n: unknown): this {
    if (typeof n === 'number' && n !== 0) {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(n);
      this.parts.push(varint((field << 3) | 1), b);
    }
    return this;
  }

  message(field: number, m: Writer | undefined): this {
    if (m) this.bytes(field, m.finish());
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Any{yaml=2}. */
const any = (v: unknown) => new Writer().string(2, JSON.stringify(v));

/** NamedAny{name=1, value=2} for each x- key of `o`. */
function vendorExtensions(w: Writer, field: number, o: Obj): void {
  for (const [k, v] of Object.entries(o)) if (k.startsWith('x-') && v !== undefined) w.message(field, new Writer().string(1, k).message(2, any(v)));
}

function schema(s: Obj): Writer {
  const w = new Writer()
    .string(1, s.$ref)
    .string(2, s.format)
    .string(4, s.description)
    .message(5, s.default === undefined ? undefined : any(s.default))
    .double(6, s.multipleOf)
    .double(7, s.maximum)
    .bool(8, s.exclusiveMaximum)
    .double(9, s.minimum)
    .bool(10, s.exclusiveMinimum)
    .int(11, s.maxLength)
    .int(12, s.minLength)
    .string(13, s.pattern)
    .int(14, s.maxItems)
    .int(15, s.minItems)
    .bool(16, s.uniqueItems)
    .int(17, s.maxProperties)
    .int(18, s.minProperties)
    .strings(19, s.required);
  if (Array.isArray(s.enum)) for (const e of s.enum) w.message(20, any(e));
  const ap = s.additionalProperties;
  if (typeof ap === 'boolean') w.message(21, new Writer().bool(2, ap));
  else if (ap && typeof ap === 'object') w.message(21, new Writer().message(1, schema(ap as Obj)));
  if (typeof s.type === 'string') w.message(22, new Writer().strings(1, [s.type]));
  if (s.items) w.message(23, new Writer().message(1, schema(s.items as Obj)));
  if (s.properties) {
    const props = new Writer();
    for (const [name, p] of Object.entries(s.properties as Record<string, Obj>)) props.message(1, new Writer().string(1, name).message(2, schema(p)));
    w.message(25, props);
  }
  vendorExtensions(w, 31, s);
  return w;
}

/** ParametersItem{parameter=1}: Parameter{body_parameter=1 | non_body_parameter=2}. */
function parameter(p: Obj): Writer {
  let param: Writer;
  if (p.in === 'body') {
    param = new Writer().message(1, new Writer().string(1, p.description).string(2, p.name).string(3, p.in).bool(4, p.required).message(5, schema(p.schema as Obj)));
  } else {
    // NonBodyParameter: query_parameter_sub_schema=3 or path_parameter_sub_schema=4, whose fields differ from 5 on.
    const query = p.in === 'query';
    const sub = new Writer()
      .bool(1, p.required)
      .string(2, p.in)
      .string(3, p.description)
      .string(4, p.name)
      .string(query ? 6 : 5, p.type)
      .bool(query ? 20 : 19, p.uniqueItems);
    param = new Writer().message(2, new Writer().message(query ? 3 : 4, sub));
  }
  return new Writer().message(1, param);
}

function operation(op: Obj): Writer {
  const w = new Writer().strings(1, op.tags).string(2, op.summary).string(3, op.description).string(5, op.operationId).strings(6, op.produces).strings(7, op.consumes);
  for (const p of (op.parameters as Obj[] | undefined) ?? []) w.message(8, parameter(p));
  if (op.responses) {
    const responses = new Writer();
    for (const [code, r] of Object.entries(op.responses as Record<string, Obj>)) {
      const response = new Writer().string(1, r.description);
      if (r.schema) response.message(2, new Writer().message(1, schema(r.schema as Obj)));
      responses.message(1, new Writer().string(1, code).message(2, new Writer().message(1, response)));
    }
    w.message(9, responses);
  }
  w.strings(10, op.schemes);
  vendorExtensions(w, 13, op);
  return w;
}

const verbFields: Record<string, number> = { get: 2, put: 3, post: 4, delete: 5, options: 6, head: 7, patch: 8 };

/** Encodes a Swagger 2.0 document (as openapi-v2.ts builds it) as openapi_v2.Document. */
export function encodeGnostic(doc: Obj): Buffer {
  const info = doc.info as Obj;
  const w = new Writer().string(1, doc.swagger).message(2, new Writer().string(1, info.title).string(2, info.version));
  const paths = new Writer();
  for (const [p, item] of Object.entries((doc.paths as Record<string, Record<string, Obj>>) ?? {})) {
    const pi = new Writer();
    for (const [verb, op] of Object.entries(item)) if (verbFields[verb]) pi.message(verbFields[verb], operation(op));
    paths.message(2, new Writer().string(1, p).message(2, pi));
  }
  w.message(8, paths);
  const defs = new Writer();
  for (const [name, s] of Object.entries((doc.definitions as Record<string, Obj>) ?? {})) defs.message(1, new Writer().string(1, name).message(2, schema(s)));
  w.message(9, defs);
  return w.finish();
}
