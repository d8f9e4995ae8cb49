import type { KubeObject } from '../api/object.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';
import type { KeyValue } from '../storage/backend.js';

/**
 * Objects to and from the store. The stored bytes are the JSON of the storage version without
 * resourceVersion; reads set resourceVersion from the key's modRevision.
 */
export function keyFor(rt: ResourceType, namespace: string | undefined, name: string): string {
  return rt.namespaced ? `/registry/${rt.storage}/${namespace}/${name}` : `/registry/${rt.storage}/${name}`;
}

export function prefixFor(rt: ResourceType, namespace?: string): string {
  return rt.namespaced && namespace ? `/registry/${rt.storage}/${namespace}/` : `/registry/${rt.storage}/`;
}

export function encode(obj: KubeObject): Buffer {
  const { resourceVersion: _, ...meta } = obj.metadata;
  return Buffer.from(JSON.stringify({ ...obj, metadata: meta }));
}

export function decode(kv: KeyValue): KubeObject {
  const obj = JSON.parse(Buffer.from(kv.value).toString()) as KubeObject;
  obj.metadata.resourceVersion = String(kv.modRevision);
  return obj;
}

/** The storage form presented in `rt`'s version. Returns a fresh object when converting. */
export function present(rt: ResourceType, stored: KubeObject): KubeObject {
  if (rt.fromStorage) return rt.fromStorage(stored);
  if (stored.apiVersion === groupVersion(rt) && stored.kind === rt.kind) return stored;
  return { ...stored, apiVersion: groupVersion(rt), kind: rt.kind };
}

/** `rt`'s version of an object in the storage form. */
export function toStorage(rt: ResourceType, obj: KubeObject): KubeObject {
  if (rt.toStorage) return rt.toStorage(obj);
  return { ...obj, apiVersion: groupVersion(rt), kind: rt.kind };
}
