import { type KubeClient, type Obj, resourcePath } from '../client/kube-client.js';
import { isCode } from '../observe/errors.js';
import { ownerReferenceTo } from './owner.js';

/**
 * Pod template hashes and ControllerRevisions: the history DaemonSets and StatefulSets keep (and
 * `kubectl rollout history/undo` read). A revision's data is the strategic-merge patch that
 * restores its template, as upstream stores it.
 */
const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
export const REVISION_HASH = 'controller-revision-hash';

/** Key-sorted JSON, so a template's hash does not depend on field order. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .filter((k) => (v as Obj)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Obj)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** FNV-1a (32 bit) of the template and collision count, rendered in upstream's safe alphabet. */
export function podTemplateHash(template: Obj, collisionCount = 0): string {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(canonical(template) + (collisionCount ? String(collisionCount) : ''))) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return [...String(h)].map((c) => alphabet[c.charCodeAt(0) % alphabet.length]).join('');
}

export interface Revision {
  hash: string;
  name: string;
  revision: number;
}

/** The revision for `template`, creating it (or renumbering an old one as newest) if needed. */
export async function ensureRevision(client: KubeClient, owner: Obj, apiVersion: string, kind: string, template: Obj, existing: Obj[]): Promise<Revision> {
  const ns = owner.metadata.namespace;
  const path = resourcePath({ group: 'apps', version: 'v1', plural: 'controllerrevisions', namespace: ns });
  const hash = podTemplateHash(template, owner.status?.collisionCount ?? 0);
  const max = existing.reduce((m, r) => Math.max(m, r.revision ?? 0), 0);
  const found = existing.find((r) => r.metadata.labels?.[REVISION_HASH] === hash);
  if (found) {
    if (found.revision < max) {
      const bumped = await client.update(`${path}/${found.metadata.name}`, { ...found, revision: max + 1 });
      return { hash, name: found.metadata.name, revision: bumped.revision };
    }
    return { hash, name: found.metadata.name, revision: found.revision };
  }
  const name = `${owner.metadata.name}-${hash}`;
  try {
    const created = await client.create(path, {
      apiVersion: 'apps/v1',
      kind: 'ControllerRevision',
      metadata: { name, namespace: ns, labels: { ...(template.metadata?.labels ?? {}), [REVISION_HASH]: hash }, ownerReferences: [ownerReferenceTo(owner, apiVersion, kind)] },
      data: { spec: { template: { ...template, $patch: 'replace' } } },
      revision: max + 1,
    });
    return { hash, name, revision: created.revision };
  } catch (err) {
    if (!isCode(err, 'AlreadyExists')) throw err;
    return { hash, name, revision: max + 1 };
  }
}

/** Deletes the oldest revisions beyond `limit`, never one in use. */
export async function trimRevisions(client: KubeClient, revisions: Obj[], inUse: Set<string>, limit: number): Promise<void> {
  const old = revisions.filter((r) => !inUse.has(r.metadata.labels?.[REVISION_HASH])).sort((a, b) => a.revision - b.revision);
  for (const r of old.slice(0, Math.max(0, old.length - limit))) {
    await client.delete(resourcePath({ group: 'apps', version: 'v1', plural: 'controllerrevisions', namespace: r.metadata.namespace, name: r.metadata.name })).catch((err) => {
      if (!isCode(err, 'NotFound')) throw err;
    });
  }
}
