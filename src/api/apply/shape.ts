import { definitions, kindDefinitions } from '../generated/schemas.js';
import type { OpenApiSchema } from '../openapi-schema.js';
import { listStrategy } from '../patch/merge-keys.js';
import { groupVersion, type ResourceType } from '../resource-type.js';

/**
 * What server-side apply needs to know of a kind's fields: which nodes are leaves, which objects
 * are structs or maps, which lists are keyed (and by what), sets, or atomic. Built-in kinds take
 * their structure from the generated schemas and their list semantics from the patch metadata
 * those carry (patch/merge-keys.ts), plus the few lists whose apply keys differ from their merge key;
 * custom resources take both from their structural schema's x-kubernetes-* extensions.
 */
export interface Shape {
  readonly kind: 'scalar' | 'object' | 'list' | 'untyped';
  /** Replaced as a whole: an atomic list or struct, or a map marked atomic. */
  readonly atomic: boolean;
  /** object: keys are data (a map), not field names (a struct). */
  readonly isMap: boolean;
  /** list: items are identified by these fields (sorted). */
  readonly keys?: readonly string[];
  /** Key values an item may leave out (upstream's schema defaults, e.g. protocol TCP). */
  readonly keyDefaults?: Readonly<Record<string, unknown>>;
  /** list: items are scalars identified by their value. */
  readonly set: boolean;
  field(name: string): Shape;
  item(): Shape;
}

/** A value of no known type: objects merge key by key, lists are atomic (upstream's "deduced" type). */
class Untyped implements Shape {
  readonly kind = 'untyped';
  readonly atomic = false;
  readonly isMap = true;
  readonly set = false;
  field(): Shape {
    return untyped;
  }
  item(): Shape {
    return untyped;
  }
}
const untyped = new Untyped();

const scalar: Shape = { kind: 'scalar', atomic: true, isMap: false, set: false, field: () => untyped, item: () => untyped };

/** Structs the API marks `+structType=atomic`: owned and replaced as a whole. */
const atomicDefinitions = new Set(
  [
    'apimachinery.pkg.apis.meta.v1.LabelSelector',
    'api.core.v1.NodeSelector',
    'api.core.v1.NodeSelectorTerm',
    'api.core.v1.TopologySelectorTerm',
    'api.core.v1.LocalObjectReference',
    'api.core.v1.ObjectReference',
    'api.core.v1.TypedLocalObjectReference',
    'api.core.v1.ConfigMapKeySelector',
    'api.core.v1.SecretKeySelector',
    'api.core.v1.ObjectFieldSelector',
    'api.core.v1.ResourceFieldSelector',
  ].map((d) => `io.k8s.${d}`),
);

/** Maps the API marks `+mapType=atomic`, by definition and field. */
const atomicMaps = new Set(['io.k8s.api.core.v1.ServiceSpec.selector', 'io.k8s.api.core.v1.PodSpec.nodeSelector']);

/** List items whose apply keys (`+listMapKey`) add protocol, which upstream defaults to TCP, to their merge key. */
const keyedWithProtocol = new Set(['io.k8s.api.core.v1.ContainerPort', 'io.k8s.api.core.v1.ServicePort']);

/** A built-in list's apply semantics from its patch metadata: keyed by the merge key, a set, or atomic. */
function builtinList(s: OpenApiSchema): Pick<Shape, 'keys' | 'keyDefaults' | 'set'> {
  const l = listStrategy(s);
  if (l.kind === 'set') return { set: true };
  if (l.kind !== 'merge') return { set: false };
  const item = s.items?.$ref ?? s.items?.allOf?.[0]?.$ref;
  if (item && keyedWithProtocol.has(item.slice(item.lastIndexOf('/') + 1))) return { keys: [l.key, 'protocol'].sort(), keyDefaults: { protocol: 'TCP' }, set: false };
  return { keys: [l.key], set: false };
}

const objectMeta = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

class SchemaShape implements Shape {
  readonly kind: Shape['kind'];
  readonly atomic: boolean;
  readonly isMap: boolean;
  readonly keys?: readonly string[];
  readonly keyDefaults?: Readonly<Record<string, unknown>>;
  readonly set: boolean;
  private readonly fields = new Map<string, Shape>();
  private itemShape?: Shape;

  /**
   * `schema` resolved; `definition` the built-in type it came from (undefined in custom
   * schemas); `root` whether it is a whole object's schema.
   */
  constructor(
    private readonly schema: OpenApiSchema,
    private readonly definition: string | undefined,
    private readonly root: boolean,
    private readonly builtin: boolean,
    atomicMap: boolean,
  ) {
    const s = schema;
    this.set = false;
    if (s.type === 'array' || s.items) {
      this.kind = 'list';
      this.isMap = false;
      if (builtin) {
        Object.assign(this, builtinList(s));
      } else {
        const t = s['x-kubernetes-list-type'];
        if (t === 'set') this.set = true;
        if (t === 'map') this.keys = [...((s['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [])].sort();
      }
      this.atomic = !this.set && !this.keys?.length;
    } else if (s.properties || s.additionalProperties || s.type === 'object' || s['x-kubernetes-preserve-unknown-fields']) {
      this.kind = s.properties || typeof s.additionalProperties === 'object' ? 'object' : 'untyped';
      this.isMap = !s.properties;
      this.atomic = atomicMap || (definition !== undefined && atomicDefinitions.has(definition)) || s['x-kubernetes-map-type'] === 'atomic';
    } else {
      this.kind = 'scalar';
      this.isMap = false;
      this.atomic = true;
    }
  }

  field(name: string): Shape {
    let f = this.fields.get(name);
    if (!f) {
      f = this.childShape(name);
      this.fields.set(name, f);
    }
    return f;
  }

  private childShape(name: string): Shape {
    const s = this.schema;
    if (!this.builtin && this.root && name === 'metadata') return shapeOf(definitions[objectMeta], objectMeta, false, true);
    const prop = s.properties?.[name];
    if (prop) return fromSchema(prop, this.builtin, this.definition !== undefined && atomicMaps.has(`${this.definition}.${name}`));
    if (typeof s.additionalProperties === 'object') return fromSchema(s.additionalProperties, this.builtin, false);
    return untyped;
  }

  item(): Shape {
    if (!this.itemShape) this.itemShape = this.schema.items ? fromSchema(this.schema.items, this.builtin, false) : untyped;
    return this.itemShape;
  }
}

const cache = new WeakMap<OpenApiSchema, Map<string, Shape>>();

function shapeOf(schema: OpenApiSchema, definition: string | undefined, root: boolean, builtin: boolean, atomicMap = false): Shape {
  // A definition is shared by many fields; only a map's atomicity and the root's metadata differ among them.
  const key = `${root}|${atomicMap}`;
  let byPath = cache.get(schema);
  if (!byPath) {
    byPath = new Map();
    cache.set(schema, byPath);
  }
  let s = byPath.get(key);
  if (!s) {
    s = new SchemaShape(schema, definition, root, builtin, atomicMap);
    byPath.set(key, s);
  }
  return s;
}

/** Follows `$ref` and single `allOf` wrappers, remembering the definition reached. */
function fromSchema(schema: OpenApiSchema, builtin: boolean, atomicMap: boolean): Shape {
  let cur: OpenApiSchema | undefined = schema;
  let definition: string | undefined;
  for (let hops = 0; cur && hops < 8; hops++) {
    if (cur.allOf?.length === 1 && !cur.properties) cur = cur.allOf[0];
    else if (cur.$ref) {
      definition = cur.$ref.slice(cur.$ref.lastIndexOf('/') + 1);
      cur = definitions[definition];
    } else break;
  }
  if (!cur) return untyped;
  if (cur['x-kubernetes-int-or-string'] || cur.anyOf) return scalar;
  return shapeOf(cur, definition, false, builtin, atomicMap);
}

/** The shape of a resource's objects; untyped for kinds without a schema. */
export function shapeFor(rt: ResourceType): Shape {
  if (rt.schema) return shapeOf(rt.schema, undefined, true, false);
  const def = kindDefinitions[`${groupVersion(rt)}/${rt.kind}`];
  if (!def || !definitions[def]) return untyped;
  return shapeOf(definitions[def], def, true, true);
}
