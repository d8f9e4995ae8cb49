import type { FieldErrors } from './field-errors.js';
import type { NameRule } from './names.js';
import type { KubeObject } from './object.js';
import type { OpenApiSchema } from './openapi-schema.js';

/** One column of a kind's Table (kubectl get), as in upstream's printers. */
export interface Column {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format?: 'name' | '';
  description: string;
  /** 0: always shown; 1: only with -o wide. */
  priority: 0 | 1;
  cell(obj: KubeObject): string | number | boolean | null;
}

export interface ScaleSpec {
  /** Dotted path of the desired replicas, e.g. "spec.replicas". */
  specReplicas: string;
  statusReplicas: string;
  /** Dotted path of the metav1.LabelSelector, e.g. "spec.selector". */
  selector: string;
  /** The selector path holds a selector already in string form (custom resources' labelSelectorPath). */
  selectorIsString?: boolean;
}

/**
 * Everything the API server needs to serve one resource in one group-version. Pure data and
 * pure functions: no I/O. Versions of one resource share `storage` and convert through it.
 */
export interface ResourceType {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  /** Rule for metadata.name. */
  nameRule: NameRule;
  /** Storage identity: every version of a resource with the same value shares one store. */
  storage: string;
  /** The version objects are stored in; others convert. Absent: this version is the storage version. */
  toStorage?(obj: KubeObject): KubeObject;
  fromStorage?(obj: KubeObject): KubeObject;
  /** Has a status subresource: main writes keep the old status, /status writes only status. */
  status: boolean;
  scale?: ScaleSpec;
  /** metadata.generation counts changes of everything but metadata and status. */
  generation: boolean;
  /** Fills defaults in place (on create and update, before validation). */
  defaults?(obj: KubeObject): void;
  /** Adjusts a new object once it has its uid and name, before validation (e.g. Job selectors, Pod status). */
  prepareForCreate?(obj: KubeObject): void;
  /** Adjusts an updated object from the one it replaces, before defaults and validation (Services keep their allocations). */
  prepareForUpdate?(obj: KubeObject, old: KubeObject): void;
  /**
   * Validates the whole object (create and update, status too). `old` is the object it replaces on
   * an update, for rules that look at both (a CRD's transition rules and their ratcheting).
   */
  validate?(obj: KubeObject, errs: FieldErrors, old?: KubeObject): void;
  /** Extra rules on update: immutable fields and allowed transitions. */
  validateUpdate?(obj: KubeObject, old: KubeObject, errs: FieldErrors): void;
  /** Seconds of graceful deletion for this object given the request's choice; 0 = delete at once. */
  gracePeriod?(obj: KubeObject, requested: number | undefined): number;
  /** Keep a status sent on create (Nodes: the kubelet registers with its status). */
  keepStatusOnCreate?: boolean;
  /** Finalizers outside metadata.finalizers that also hold deletion (Namespaces' spec.finalizers). */
  systemFinalizers?(obj: KubeObject): string[];
  /** Marks an object whose deletion must wait (Namespaces turn Terminating). */
  markDeleting?(obj: KubeObject): void;
  /**
   * The verbs served, when not all of them: the review kinds answer a create and keep nothing,
   * so `create` is all they have.
   */
  verbs?: string[];
  /** Field-selector fields beyond metadata.name and metadata.namespace. */
  fields?: Record<string, (obj: KubeObject) => string>;
  columns: Column[];
  /**
   * A custom resource's structural schema (from its CustomResourceDefinition): unknown fields
   * are pruned by it, and it is published in OpenAPI. Custom resources take no strategic merge
   * patch, as upstream.
   */
  schema?: OpenApiSchema;
  /** Served from a CustomResourceDefinition rather than built in. */
  custom?: boolean;
}

export function groupVersion(rt: { group: string; version: string }): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version;
}

/** "pods", "deployments.apps": how upstream names a resource in messages. */
export function qualifiedResource(rt: ResourceType): string {
  return rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
}

/** "Pod", "Deployment.apps": how upstream names a kind in Invalid messages. */
export function qualifiedKind(rt: ResourceType): string {
  return rt.group ? `${rt.kind}.${rt.group}` : rt.kind;
}
