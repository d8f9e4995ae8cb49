import { KubicleError } from '../../observe/errors.js';
import { deepEqual, isPlainObject, type KubeObject } from '../object.js';
import { difference, type FieldSet, formatPath, intersection, isEmpty, isFieldSet, members, sorted, union } from './field-set.js';
import type { Shape } from './shape.js';
import { type Comparison, compare, fieldSetOf, merge, removeItems } from './typed.js';

/**
 * metadata.managedFields: who owns which fields of an object. Every write is an Update by its
 * field manager, which then owns what it changed and takes it from the others; a server-side
 * apply (Apply) owns exactly what its configuration sets, conflicts with other owners of fields
 * it would change unless forced, and removes fields it set before and no one owns now.
 */
export interface ManagerEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  /** "status" for writes through that subresource; empty for the main resource. */
  subresource?: string;
  set: FieldSet;
}

/** Who writes, and where: the identity of a managedFields entry. */
export interface Writer {
  manager: string;
  apiVersion: string;
  subresource?: string;
}

export const lastAppliedAnnotation = 'kubectl.kubernetes.io/last-applied-configuration';
/** Update entries beyond this many are merged into one, as upstream caps them. */
const maxUpdateManagers = 10;

/**
 * Fields the server sets, owned by no one. Only these exact members: `metadata` itself is
 * dropped, the labels under it are kept.
 */
const serverFields: FieldSet = {
  'f:apiVersion': {},
  'f:kind': {},
  'f:metadata': Object.fromEntries(
    ['.', 'name', 'namespace', 'creationTimestamp', 'selfLink', 'uid', 'generation', 'managedFields', 'resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds'].map((f) => [
      f === '.' ? f : `f:${f}`,
      {},
    ]),
  ),
};

function key(e: Pick<ManagerEntry, 'manager' | 'operation' | 'apiVersion' | 'subresource'>): string {
  // Appliers keep one entry whatever version they apply; updaters have one per version.
  return JSON.stringify([e.manager, e.operation, e.subresource ?? '', e.operation === 'Apply' ? '' : e.apiVersion]);
}

/** Decodes managedFields; undefined when they are not a valid list (the caller then keeps the live ones). */
export function decodeManagedFields(raw: unknown): ManagerEntry[] | undefined {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) return undefined;
  const out: ManagerEntry[] = [];
  for (const e of raw) {
    if (!isPlainObject(e)) return undefined;
    if ((e.operation !== 'Apply' && e.operation !== 'Update') || typeof e.manager !== 'string') return undefined;
    if (e.fieldsType !== undefined && e.fieldsType !== 'FieldsV1') return undefined;
    const set = e.fieldsV1 ?? {};
    if (!isFieldSet(set)) return undefined;
    out.push({
      manager: e.manager,
      operation: e.operation,
      apiVersion: typeof e.apiVersion === 'string' ? e.apiVersion : '',
      time: typeof e.time === 'string' ? e.time : undefined,
      subresource: typeof e.subresource === 'string' && e.subresource ? e.subresource : undefined,
      set,
    });
  }
  return out;
}

/** `[]` and `[{}]` ask for the managed fields to be cleared, as upstream reads them. */
export function isReset(raw: unknown): boolean {
  return Array.isArray(raw) && (raw.length === 0 || (raw.length === 1 && isPlainObject(raw[0]) && Object.keys(raw[0]).length === 0));
}

/** Entries in upstream's order (Apply first, then oldest first), empty ones dropped, Update entries capped. */
export function encodeManagedFields(entries: ManagerEntry[]): Record<string, unknown>[] | undefined {
  let kept = entries.filter((e) => !isEmpty(e.set));
  const updates = kept.filter((e) => e.operation === 'Update' && e.manager !== 'ancient-changes').sort((a, b) => (b.time ?? '').localeCompare(a.time ?? ''));
  const ancient = kept.find((e) => e.operation === 'Update' && e.manager === 'ancient-changes');
  if (updates.length + (ancient ? 1 : 0) > maxUpdateManagers) {
    const old = updates.slice(maxUpdateManagers - 1);
    const merged: ManagerEntry = {
      manager: 'ancient-changes',
      operation: 'Update',
      apiVersion: old[0].apiVersion,
      time: old[0].time,
      set: old.reduce<FieldSet>((s, e) => union(s, e.set) ?? {}, ancient?.set ?? {}),
    };
    kept = [...kept.filter((e) => !old.includes(e) && e !== ancient), merged];
  }
  if (!kept.length) return undefined;
  kept.sort(
    (a, b) =>
      a.operation.localeCompare(b.operation) ||
      (a.time ?? '').localeCompare(b.time ?? '') ||
      a.manager.localeCompare(b.manager) ||
      a.apiVersion.localeCompare(b.apiVersion) ||
      (a.subresource ?? '').localeCompare(b.subresource ?? ''),
  );
  return kept.map((e) => ({
    manager: e.manager,
    operation: e.operation,
    apiVersion: e.apiVersion,
    ...(e.time ? { time: e.time } : {}),
    fieldsType: 'FieldsV1',
    fieldsV1: sorted(e.set),
    ...(e.subresource ? { subresource: e.subresource } : {}),
  }));
}

/** The fields of a set a writer may own: no server-set fields, and only status (or all but status). */
function ownable(set: FieldSet | undefined, writer: Writer, hasStatus: boolean): FieldSet {
  let s = difference(set, serverFields) ?? {};
  if (writer.subresource === 'status') s = s['f:status'] ? { 'f:status': s['f:status'] } : {};
  else if (hasStatus && s['f:status']) {
    const { 'f:status': _, ...rest } = s;
    s = rest;
  }
  return s;
}

function comparison(live: unknown, next: unknown, shape: Shape): Comparison {
  const c = compare(live, next, shape);
  return { added: difference(c.added, serverFields) ?? {}, modified: difference(c.modified, serverFields) ?? {}, removed: difference(c.removed, serverFields) ?? {} };
}

/**
 * Other owners lose what `changed` covers (an update always wins, as does a forced apply);
 * everyone loses what was removed.
 */
function transfer(entries: ManagerEntry[], self: string, changed: FieldSet, removed: FieldSet): ManagerEntry[] {
  if (isEmpty(changed) && isEmpty(removed)) return entries;
  return entries.map((e) => {
    let set = difference(e.set, removed) ?? {};
    if (key(e) !== self) set = difference(set, changed) ?? {};
    return set === e.set ? e : { ...e, set };
  });
}

/** The entries a write starts from: those it carries if it set them, else the live ones. */
export function baseEntries(live: KubeObject | undefined, requested: unknown, subresource: string | undefined): ManagerEntry[] {
  const fromLive = decodeManagedFields(live?.metadata.managedFields) ?? [];
  if (subresource || requested === undefined || deepEqual(requested, live?.metadata.managedFields)) return fromLive;
  if (isReset(requested)) return [];
  const asked = decodeManagedFields(requested);
  return asked?.length ? asked : fromLive;
}

/**
 * managedFields after an ordinary write (create, update, patch) by `writer`: it owns what it
 * added or changed, others lose those fields, and removed fields leave every entry.
 * `live` is undefined for a create.
 */
export function trackUpdate(shape: Shape, live: KubeObject | undefined, next: KubeObject, writer: Writer, now: string, hasStatus: boolean): Record<string, unknown>[] | undefined {
  const entries = baseEntries(live, next.metadata.managedFields, writer.subresource);
  const c = comparison(live, next, shape);
  const changed = ownable(union(c.added, c.modified), writer, hasStatus);
  const self = key({ ...writer, operation: 'Update' });
  let out = transfer(entries, self, changed, c.removed);
  const mine = out.find((e) => key(e) === self);
  const set = union(difference(mine?.set, c.removed), changed) ?? {};
  if (mine) {
    if (!deepEqual(set, mine.set)) out = out.map((e) => (e === mine ? { ...e, set, time: now } : e));
  } else out.push({ manager: writer.manager, operation: 'Update', apiVersion: writer.apiVersion, subresource: writer.subresource, time: now, set });
  return encodeManagedFields(out);
}

export interface ApplyOutcome {
  object: KubeObject;
  managedFields: Record<string, unknown>[] | undefined;
}

/**
 * Server-side apply of `config` by `writer` onto `live` (undefined: the object is created).
 * Throws a 409 naming each conflicting field unless `force`. The manager "kubectl" may take
 * fields its client-side apply set (the last-applied annotation still matches them) without
 * forcing, and keeps that annotation up to date, as kubectl's move to server-side apply needs.
 */
export function applyConfig(shape: Shape, live: KubeObject | undefined, config: KubeObject, writer: Writer, force: boolean, now: string, hasStatus: boolean): ApplyOutcome {
  let entries = decodeManagedFields(live?.metadata.managedFields) ?? [];
  if (live && !entries.length) {
    // Fields set before anyone applied stay owned, so the first apply neither takes nor drops them.
    entries = [{ manager: 'before-first-apply', operation: 'Update', apiVersion: writer.apiVersion, set: ownable(fieldSetOf(live, shape), writer, hasStatus) }];
  }
  const self = key({ ...writer, operation: 'Apply' });
  const previous = entries.find((e) => key(e) === self);
  const applied = ownable(fieldSetOf(config, shape), writer, hasStatus);
  const mine: ManagerEntry = { manager: writer.manager, operation: 'Apply', apiVersion: writer.apiVersion, subresource: writer.subresource, time: previous?.time, set: applied };
  entries = [...entries.filter((e) => e !== previous), mine];

  // Only what this write may change is merged: status alone through /status, all else otherwise.
  const effective = writer.subresource === 'status' ? { status: config.status } : hasStatus ? { ...config, status: undefined } : config;
  let next = merge(live ?? {}, effective, shape) as KubeObject;
  // Fields this manager applied before and no longer does go, unless someone still owns them.
  const dropped = difference(previous?.set, applied);
  if (dropped) {
    const owned = entries.reduce<FieldSet | undefined>((s, e) => union(s, e.set), undefined);
    next = removeItems(next, prunable(dropped, owned), shape) as KubeObject;
  }

  const c = comparison(live ?? {}, next, shape);
  const changed = union(c.added, c.modified) ?? {};
  const conflicts: { manager: ManagerEntry; path: string[] }[] = [];
  for (const e of entries) {
    if (e === mine) continue;
    for (const path of members(intersection(e.set, changed))) conflicts.push({ manager: e, path });
  }
  if (conflicts.length && !force && !(writer.manager === 'kubectl' && live && takenOverFromClientSideApply(shape, live, conflicts))) {
    throw conflictError(conflicts);
  }
  entries = transfer(entries, self, changed, c.removed);
  const result = entries.find((e) => key(e) === self) as ManagerEntry;
  if (!live || !deepEqual(live, next) || !previous || !deepEqual(previous.set, result.set)) result.time = now;

  const annotations = live?.metadata.annotations;
  if (writer.manager === 'kubectl' && annotations?.[lastAppliedAnnotation] !== undefined) {
    const { [lastAppliedAnnotation]: _, ...rest } = config.metadata?.annotations ?? {};
    const recorded = { ...config, metadata: { ...config.metadata, annotations: Object.keys(rest).length ? rest : undefined } };
    next.metadata.annotations = { ...(next.metadata.annotations ?? {}), [lastAppliedAnnotation]: JSON.stringify(recorded) };
  }
  return { object: next, managedFields: encodeManagedFields(entries) };
}

/** The members of `dropped` that no one owns, at or below. */
function prunable(dropped: FieldSet, owned: FieldSet | undefined): FieldSet | undefined {
  if (!owned) return dropped;
  const out: FieldSet = {};
  for (const [el, sub] of Object.entries(dropped)) {
    if (el === '.') continue;
    const p = prunable(sub, owned[el]);
    if (p) out[el] = p;
  }
  return isEmpty(out) ? undefined : out;
}

/**
 * Whether every conflict is a field kubectl's client-side apply last set and no one has changed
 * since (live still has the last-applied value): those move to server-side apply freely.
 */
function takenOverFromClientSideApply(shape: Shape, live: KubeObject, conflicts: { path: string[] }[]): boolean {
  const raw = live.metadata.annotations?.[lastAppliedAnnotation];
  let lastApplied: unknown;
  try {
    lastApplied = JSON.parse(String(raw));
  } catch {
    return false;
  }
  if (!isPlainObject(lastApplied)) return false;
  const allowed = difference(fieldSetOf(lastApplied, shape), compare(lastApplied, live, shape).modified);
  return conflicts.every((c) => {
    let node = allowed;
    for (const el of c.path) node = node?.[el];
    return node !== undefined && (isEmpty(node) || '.' in node);
  });
}

function describe(e: ManagerEntry): string {
  let s = JSON.stringify(e.manager);
  if (e.subresource) s += ` with subresource ${JSON.stringify(e.subresource)}`;
  return e.operation === 'Update' ? `${s} using ${e.apiVersion}` : s;
}

function conflictError(conflicts: { manager: ManagerEntry; path: string[] }[]): KubicleError {
  const causes = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with ${describe(c.manager)}`, field: formatPath(c.path) }));
  let message: string;
  if (conflicts.length === 1) message = `Apply failed with 1 conflict: conflict with ${describe(conflicts[0].manager)}: ${formatPath(conflicts[0].path)}`;
  else {
    const byManager = new Map<string, string[]>();
    for (const c of conflicts) {
      const m = describe(c.manager);
      byManager.set(m, [...(byManager.get(m) ?? []), formatPath(c.path)]);
    }
    const lines = [...byManager.keys()].sort().flatMap((m) => [`conflicts with ${m}:`, ...(byManager.get(m) ?? []).map((p) => `- ${p}`)]);
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
  }
  return new KubicleError('Conflict', message, { causes });
}
