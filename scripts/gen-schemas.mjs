#!/usr/bin/env node
// Generates the OpenAPI v3 schemas of every served built-in kind (ADR 0016):
//   src/api/generated/schemas.ts       structure: types, formats, enums, required fields
//   src/api/generated/descriptions.ts  descriptions, loaded only when a document is served
// Two packages generated from Kubernetes' own OpenAPI document are read, each for what it
// keeps: kubernetes-models' declarations carry the definition names (io.k8s.api.core.v1.Pod),
// every field's description (also on fields that refer to other types), enums and required
// fields; @kubernetes/client-node's models carry the integer formats (int32, int64) that
// TypeScript's `number` loses. Neither keeps the strategic-merge-patch metadata, so a kubectl
// binary is read for it (ADR 0021): its reflection data holds every k8s.io/api struct with
// the patchStrategy/patchMergeKey tags upstream generates x-kubernetes-patch-* from. Nothing
// here is typed by hand but the handful of scalar types whose schema upstream writes by hand
// too (Time, Quantity, IntOrString, …).
// Run with `npm run gen:schemas` after changing kinds or a package's version; KUBECTL names
// the kubectl binary to read (default: the newest /usr/lib/google-cloud-sdk/bin/kubectl.1.N).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import ts from 'typescript';
import { definitionName, kubectlBinary, readGoStructs, tagValue } from './go-types.mjs';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const kmDir = path.dirname(require.resolve('kubernetes-models/package.json'));
const amDir = path.dirname(require.resolve('@kubernetes-models/apimachinery/package.json'));
const cnModels = path.join(path.dirname(require.resolve('@kubernetes/client-node/package.json')), 'dist/gen/models');

const { builtinRegistry } = await import(path.join(root, 'dist/src/api/registry.js'));

/** Definition name from kubernetes-models' alias: IIoK8sApiCoreV1Pod → io.k8s.api.core.v1.Pod. */
function defName(alias) {
  // Packages without a version in their path.
  for (const pkg of ['IoK8sApimachineryPkgApiResource', 'IoK8sApimachineryPkgUtilIntstr', 'IoK8sApimachineryPkgRuntime']) {
    if (alias.startsWith(`I${pkg}`)) return `${pkg.match(/[A-Z][a-z0-9]*/g).join('.').toLowerCase()}.${alias.slice(pkg.length + 1)}`;
  }
  const words = alias.replace(/^I/, '').match(/[A-Z][a-z0-9]*(?:alpha\d+|beta\d+)?/g);
  const vi = words.findIndex((w) => /^V\d+((alpha|beta)\d+)?$/.test(w));
  const name = [...words.slice(0, vi + 1).map((w) => w.toLowerCase()), words.slice(vi + 1).join('')].join('.');
  return name.replace(/^io\.k8s\.apiextensions\.apiserver\./, 'io.k8s.apiextensions-apiserver.');
}

// Scalars whose schemas upstream declares by hand (OpenAPISchemaType/OpenAPIV3OneOfTypes).
const scalars = {
  'io.k8s.apimachinery.pkg.apis.meta.v1.Time': { type: 'string', format: 'date-time' },
  'io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime': { type: 'string', format: 'date-time' },
  'io.k8s.apimachinery.pkg.api.resource.Quantity': { oneOf: [{ type: 'string' }, { type: 'number' }] },
  'io.k8s.apimachinery.pkg.util.intstr.IntOrString': { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
  'io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1': { type: 'object' },
  'io.k8s.apimachinery.pkg.runtime.RawExtension': { type: 'object' },
};

const parsed = new Map();
function parse(file) {
  let sf = parsed.get(file);
  if (!sf) {
    sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    parsed.set(file, sf);
  }
  return sf;
}

function jsDoc(node) {
  const doc = node.jsDoc?.[0]?.comment;
  if (!doc) return undefined;
  return (typeof doc === 'string' ? doc : doc.map((d) => d.text).join('')).trim() || undefined;
}

/** A kubernetes-models declaration file: its main interface, imports and definition name. */
function kmFile(file) {
  const sf = parse(file);
  const imports = new Map();
  let iface;
  let alias;
  let typeAlias;
  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && st.importClause?.namedBindings && ts.isNamedImports(st.importClause.namedBindings)) {
      for (const el of st.importClause.namedBindings.elements) imports.set(el.name.text, resolveImport(file, st.moduleSpecifier.text));
    } else if (ts.isInterfaceDeclaration(st) && !iface) iface = st;
    else if (ts.isTypeAliasDeclaration(st) && !typeAlias) typeAlias = st;
    else if (ts.isExportDeclaration(st) && st.exportClause && ts.isNamedExports(st.exportClause)) {
      const el = st.exportClause.elements.find((e) => e.name.text.startsWith('IIoK8s'));
      if (el) alias = el.name.text;
    }
  }
  return { file, iface, typeAlias, imports, def: alias && defName(alias) };
}

function resolveImport(from, spec) {
  if (spec.startsWith('@kubernetes-models/apimachinery/')) return `${path.join(amDir, spec.slice('@kubernetes-models/apimachinery/'.length))}.d.ts`;
  return path.resolve(path.dirname(from), spec.replace(/\.js$/, '')) + '.d.ts';
}

/** client-node's model: field name → { type, format, description }. */
function cnModel(name) {
  if (!name) return undefined;
  try {
    const attrs = require(path.join(cnModels, `${name}.js`))[name]?.attributeTypeMap;
    if (!attrs) return undefined;
    const docs = {};
    const sf = parse(path.join(cnModels, `${name}.d.ts`));
    const cls = sf.statements.find((s) => ts.isClassDeclaration(s));
    for (const m of cls?.members ?? []) if (m.name && ts.isStringLiteral(m.name)) docs[m.name.text] = jsDoc(m);
    return Object.fromEntries(attrs.map((a) => [a.baseName, { type: a.type, format: a.format, description: docs[a.baseName] }]));
  } catch {
    return undefined;
  }
}

function cnInner(t) {
  const m = t?.match(/^Array<(.+)>$/) ?? t?.match(/^\{ \[key: string\]: (.+); \}$/);
  return m ? m[1] : t;
}

const schemas = {};
const descriptions = {};
const queue = [];

function want(file, cnName) {
  queue.push({ file, cnName });
}

/** The schema of a property's type node; refs queue their definitions. */
function typeSchema(node, km, cn, imports) {
  if (ts.isArrayTypeNode(node)) return { type: 'array', items: typeSchema(node.elementType, km, cnInner(cn?.type), imports) };
  if (ts.isTypeReferenceNode(node)) {
    const name = node.typeName.getText();
    if (name === 'Array') return { type: 'array', items: typeSchema(node.typeArguments[0], km, { type: cnInner(cn?.type), format: cn?.format }, imports) };
    if (name === 'Record') return { type: 'object', additionalProperties: typeSchema(node.typeArguments[1], km, { type: cnInner(cn?.type), format: cn?.format }, imports) };
    // A type referring to itself (JSONSchemaProps) names its own interface.
    const file = name === km.iface?.name.text ? km.file : imports.get(name);
    if (!file) throw new Error(`unresolved type ${name}`);
    const target = kmFile(file);
    want(file, cnInner(cnInner(cn?.type)));
    return { $ref: `#/components/schemas/${target.def}` };
  }
  if (ts.isTypeLiteralNode(node)) {
    const index = node.members.find((m) => ts.isIndexSignatureDeclaration(m));
    if (index) return { type: 'object', additionalProperties: typeSchema(index.type, km, { type: cnInner(cn?.type), format: cn?.format }, imports) };
    // kubernetes-models writes an embedded kind (StatefulSet's volumeClaimTemplates) inline;
    // upstream refers to the kind's definition, found here by client-node's model name.
    const model = cnInner(cn?.type)?.match(/^V1([A-Z]\w+)$/)?.[1];
    if (node.members.length && model && existsSync(path.join(kmDir, 'v1', `${model}.d.ts`))) {
      const file = path.join(kmDir, 'v1', `${model}.d.ts`);
      want(file, `V1${model}`);
      return { $ref: `#/components/schemas/${kmFile(file).def}` };
    }
    if (node.members.length) throw new Error(`inline object type with no model: ${node.getText().slice(0, 80)}`);
    return { type: 'object' };
  }
  if (ts.isUnionTypeNode(node)) {
    const lits = node.types.filter((t) => ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal)).map((t) => t.literal.text);
    if (lits.length === node.types.length) return { type: 'string', enum: lits.sort() };
    return {};
  }
  if (ts.isLiteralTypeNode(node)) return { type: 'string' };
  switch (node.kind) {
    case ts.SyntaxKind.StringKeyword:
      return cn?.format === 'byte' ? { type: 'string', format: 'byte' } : { type: 'string' };
    case ts.SyntaxKind.BooleanKeyword:
      return { type: 'boolean' };
    case ts.SyntaxKind.NumberKeyword: {
      const f = cn?.format;
      if (f === 'int32' || f === 'int64') return { type: 'integer', format: f };
      return { type: 'number', format: 'double' };
    }
    default:
      return { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  }
}

function define(file, cnName) {
  const km = kmFile(file);
  if (!km.def || schemas[km.def]) return;
  if (scalars[km.def]) {
    schemas[km.def] = scalars[km.def];
    const d = km.typeAlias && jsDoc(km.typeAlias);
    if (d) descriptions[km.def] = { '': d };
    return;
  }
  if (!km.iface) {
    // A union upstream leaves untyped (JSON, JSONSchemaPropsOrBool…): any value.
    if (!km.typeAlias) throw new Error(`no interface in ${file}`);
    schemas[km.def] = {};
    const d = jsDoc(km.typeAlias);
    if (d) descriptions[km.def] = { '': d };
    return;
  }
  const cn = cnModel(cnName);
  const schema = { type: 'object', properties: {} };
  const docs = {};
  const typeDoc = jsDoc(km.iface);
  if (typeDoc) docs[''] = typeDoc;
  const required = [];
  schemas[km.def] = schema;
  for (const m of km.iface.members) {
    if (!ts.isPropertySignature(m) || !m.type) continue;
    const name = m.name.text;
    const fieldCn = cn?.[name];
    let s = typeSchema(m.type, km, fieldCn, km.imports);
    // Upstream wraps a described reference in allOf so the description sits beside it.
    if (s.$ref) s = { allOf: [s] };
    schema.properties[name] = s;
    const d = jsDoc(m) ?? fieldCn?.description;
    if (d) docs[name] = d;
    if (!m.questionToken && name !== 'apiVersion' && name !== 'kind') required.push(name);
  }
  if (required.length) schema.required = required;
  if (!Object.keys(schema.properties).length) {
    delete schema.properties;
    schema['x-kubernetes-preserve-unknown-fields'] = true;
  }
  descriptions[km.def] = docs;
}

const special = { 'v1/Event': 'CoreV1Event', 'events.k8s.io/v1/Event': 'EventsV1Event' };
const kinds = {};
for (const rt of builtinRegistry().all) {
  const gv = rt.group ? `${rt.group}/${rt.version}` : rt.version;
  // metrics.k8s.io is metrics-server's API, not Kubernetes' own: neither package models it.
  if (rt.group === 'metrics.k8s.io') continue;
  let file = path.join(kmDir, rt.group || '', rt.version, `${rt.kind}.d.ts`);
  // A version kubernetes-models has dropped (authentication v1beta1 SelfSubjectReview) has the
  // shape of its group's v1 kind; it is served with that definition.
  if (!existsSync(file)) file = path.join(kmDir, rt.group || '', 'v1', `${rt.kind}.d.ts`);
  const km = kmFile(file);
  if (!km.def) throw new Error(`no kubernetes-models declaration for ${gv} ${rt.kind}`);
  kinds[`${gv}/${rt.kind}`] = km.def;
  want(file, special[`${gv}/${rt.kind}`] ?? `${rt.version[0].toUpperCase()}${rt.version.slice(1)}${rt.kind}`);
}
while (queue.length) {
  const { file, cnName } = queue.shift();
  define(file, cnName);
}

/** A struct's JSON fields with their tags; embedded structs without a JSON name (`,inline`) lend theirs. */
function jsonFields(t, into = new Map()) {
  for (const f of t.fields) {
    const json = tagValue(f.tag, 'json');
    const name = json?.split(',')[0];
    if (name === '-') continue;
    if (!name && (f.embedded || json === ',inline')) {
      const inner = f.type.kind === 'pointer' ? f.type.elem : f.type;
      if (inner.kind === 'struct') jsonFields(inner, into);
      continue;
    }
    if (name) into.set(name, f);
  }
  return into;
}

/** Adds x-kubernetes-patch-strategy/-merge-key to the properties whose Go fields carry the tags. */
function addPatchMetadata(binary) {
  const structs = new Map();
  for (const t of readGoStructs(binary)) {
    const def = definitionName(t);
    if (def) structs.set(def, t);
  }
  let tagged = 0;
  const missing = [];
  for (const [def, schema] of Object.entries(schemas)) {
    if (!schema.properties) continue;
    const t = structs.get(def);
    if (!t) {
      if (!def.startsWith('io.k8s.apiextensions-apiserver.')) missing.push(def);
      continue;
    }
    const fields = jsonFields(t);
    for (const [name, prop] of Object.entries(schema.properties)) {
      const f = fields.get(name);
      const strategy = f && tagValue(f.tag, 'patchStrategy');
      if (!strategy) continue;
      prop['x-kubernetes-patch-strategy'] = strategy;
      const key = tagValue(f.tag, 'patchMergeKey');
      if (key) prop['x-kubernetes-patch-merge-key'] = key;
      tagged++;
    }
  }
  // apiextensions types are not linked into kubectl; upstream gives them no patch tags either.
  if (missing.length) console.warn(`no Go type in ${binary} for: ${missing.join(', ')}`);
  return tagged;
}

const kubectl = kubectlBinary();
const patchFields = addPatchMetadata(kubectl);

const sorted = (o) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
const header = `// Generated by scripts/gen-schemas.mjs from kubernetes-models, @kubernetes/client-node and ${path.basename(kubectl)}'s Go types. Do not edit.\n`;
writeFileSync(
  path.join(root, 'src/api/generated/schemas.ts'),
  `${header}import type { OpenApiSchema } from '../openapi-schema.js';

/** Served built-in kinds ("group/version/Kind", core without group) and their definitions. */
export const kindDefinitions: Record<string, string> = ${JSON.stringify(kinds, null, 1)};

/** OpenAPI v3 schemas without descriptions, by definition name. */
export const definitions: Record<string, OpenApiSchema> = ${JSON.stringify(sorted(schemas))};
`,
);
writeFileSync(
  path.join(root, 'src/api/generated/descriptions.ts'),
  `${header}// Per definition: "" is the type's description, other keys its fields'. Kept apart from the
// schemas because only served OpenAPI documents need them.
export const descriptionsJson = ${JSON.stringify(JSON.stringify(sorted(descriptions)))};
`,
);
console.log(`schemas: ${Object.keys(kinds).length} kinds, ${Object.keys(schemas).length} definitions, ${patchFields} fields with patch metadata`);
