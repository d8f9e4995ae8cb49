#!/usr/bin/env node
// Generates src/apiserver/protobuf/messages.ts: the Kubernetes protobuf messages of every served
// built-in kind and everything they contain, from the protobuf struct tags of upstream's Go
// types in a kubectl binary (ADR 0021; scripts/go-types.mjs reads them). Each field keeps its
// number, JSON name and type, and whether a zero value stays in JSON (a pointer, or a field
// without omitempty) — gogo-protobuf writes zero values of plain fields, encoding/json drops them.
// Run with `npm run gen:protobuf` after changing kinds; KUBECTL names the binary as for gen:schemas.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { definitionName, kubectlBinary, readGoStructs, tagValue } from './go-types.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const { kindDefinitions } = await import(path.join(root, 'dist/src/api/generated/schemas.js'));

// Types whose protobuf form is not their Go struct's (hand-written marshalling upstream), or
// whose JSON is not an object: decode.ts decodes these by name.
const special = {
  'io.k8s.apimachinery.pkg.apis.meta.v1.Time': 'Time',
  'io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime': 'MicroTime',
  'io.k8s.apimachinery.pkg.apis.meta.v1.Duration': 'Duration',
  'io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1': 'RawJSON',
  'io.k8s.apimachinery.pkg.runtime.RawExtension': 'RawJSON',
  'io.k8s.apimachinery.pkg.api.resource.Quantity': 'Quantity',
  'io.k8s.apimachinery.pkg.util.intstr.IntOrString': 'IntOrString',
};

const scalars = { string: 'string', bool: 'bool', int32: 'int32', int64: 'int64', int: 'int64', uint32: 'int64', uint64: 'int64', float64: 'double', float32: 'float' };

const structs = new Map();
for (const t of readGoStructs(kubectlBinary())) if (definitionName(t)) structs.set(definitionName(t), t);

const messages = {};
const queue = [];

/** The decode type of a Go type (pointers already taken off). */
function typeOf(t, where) {
  if (t.kind === 'slice' && t.elem.kind === 'uint8') return 'bytes';
  // A named []string as a map's value (authentication's ExtraValue) is a message of one
  // repeated string in protobuf, an array in JSON.
  if (t.kind === 'slice' && t.named && t.elem.kind === 'string') return 'StringList';
  if (t.kind === 'struct') {
    const name = definitionName(t);
    if (special[name]) return special[name];
    queue.push(name);
    return name;
  }
  const s = scalars[t.kind];
  if (!s) throw new Error(`${where}: no protobuf type for Go ${t.kind} ${t.name}`);
  return s;
}

function define(name) {
  if (messages[name] || special[name]) return;
  const t = structs.get(name);
  if (!t) throw new Error(`no Go type for ${name}`);
  const fields = {};
  messages[name] = fields;
  for (const f of t.fields) {
    const pb = tagValue(f.tag, 'protobuf');
    if (!pb || pb === '-') continue;
    const parts = pb.split(',');
    const number = Number(parts[1]);
    const json = tagValue(f.tag, 'json') ?? '';
    const def = { name: json.split(',')[0] };
    if (json === ',inline' || (f.embedded && !def.name)) def.inline = true;
    let type = f.type;
    if (type.kind === 'pointer') {
      def.keepZero = true;
      type = type.elem;
    } else if (!json.split(',').includes('omitempty') && !def.inline) def.keepZero = true;
    const where = `${name}.${f.name}`;
    if (type.kind === 'map') def.map = typeOf(type.elem.kind === 'pointer' ? type.elem.elem : type.elem, where);
    else if (type.kind === 'slice' && type.elem.kind !== 'uint8') {
      def.repeated = true;
      def.type = typeOf(type.elem.kind === 'pointer' ? type.elem.elem : type.elem, where);
    } else def.type = typeOf(type, where);
    // A field JSON leaves out (runtime.Unknown's raw) goes by its protobuf name.
    if ((!def.name || def.name === '-') && !def.inline) def.name = parts.find((p) => p.startsWith('name='))?.slice(5) ?? f.name;
    fields[number] = def;
  }
}

// Every served built-in kind kubectl links, the request envelope, and the bodies sent beside
// kinds. apiextensions' types are not in kubectl: CRDs are sent as JSON, which client-go does.
const kinds = Object.fromEntries(Object.entries(kindDefinitions).filter(([, d]) => structs.has(d)));
const unlinked = Object.keys(kindDefinitions).filter((k) => !kinds[k]);
if (unlinked.length) console.warn(`no Go type, so no protobuf, for: ${unlinked.join(', ')}`);
const extra = {
  'meta.k8s.io/v1/DeleteOptions': 'io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions',
  'v1/DeleteOptions': 'io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions',
  'policy/v1/Eviction': 'io.k8s.api.policy.v1.Eviction',
  // Subresources' bodies: create token, pods/binding (schedulers), scale.
  'authentication.k8s.io/v1/TokenRequest': 'io.k8s.api.authentication.v1.TokenRequest',
  'v1/Binding': 'io.k8s.api.core.v1.Binding',
  'autoscaling/v1/Scale': 'io.k8s.api.autoscaling.v1.Scale',
};
Object.assign(kinds, extra);
queue.push('io.k8s.apimachinery.pkg.runtime.Unknown', ...Object.values(kinds));
while (queue.length) define(queue.shift());

const sorted = (o) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
writeFileSync(
  path.join(root, 'src/apiserver/protobuf/messages.ts'),
  `// Generated by scripts/gen-protobuf.mjs from ${path.basename(kubectlBinary())}'s Go types. Do not edit.
import type { FieldDef } from './schema.js';

/** Messages by name, each field by number. */
export const messages: Record<string, Record<number, FieldDef>> = ${JSON.stringify(sorted(messages))};

/** The message of each kind, by apiVersion/kind. */
export const kindMessages: Record<string, string> = ${JSON.stringify(sorted(kinds), null, 1)};
`,
);
console.log(`protobuf: ${Object.keys(kinds).length} kinds, ${Object.keys(messages).length} messages`);
