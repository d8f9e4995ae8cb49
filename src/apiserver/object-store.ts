import { randomUUID } from 'node:crypto';
import { trackUpdate, type Writer } from '../api/apply/managed-fields.js';
import { shapeFor } from '../api/apply/shape.js';
import { FieldErrors } from '../api/field-errors.js';
import { nameErrors, qualifiedNameErrors, validateAnnotations, validateLabels } from '../api/names.js';
import { deepClone, deepEqual, type KubeObject } from '../api/object.js';
import { groupVersion, qualifiedKind, qualifiedResource, type ResourceType } from '../api/resource-type.js';
import { type FieldRequirement, type LabelSelector, matchesFields, matchesLabels } from '../api/selectors.js';
import { isoAfter, now } from '../api/time.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Backend } from '../storage/backend.js';
import type { UserInfo } from './authn.js';
import { decode, encode, keyFor, prefixFor, present, toStorage } from './object-codec.js';

/**
 * The generic registry behind every resource: upstream's create/update/delete semantics
 * (uid, timestamps, generation, status subresource, finalizers and graceful deletion,
 * preconditions, dry run) over the Backend. Kind-specific behaviour comes from ResourceType.
 */
export interface Admission {
  /** Called before a create is written; throws to refuse. A dry run must change nothing else. */
  admitCreate(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void>;
  /** Called before a delete is carried out; throws to refuse. */
  admitDelete(rt: ResourceType, obj: KubeObject, opts?: WriteOptions): Promise<void>;
  /** Optional: called before an update is written, once per write attempt; throws to refuse. */
  admitUpdate?(rt: ResourceType, obj: KubeObject, old: KubeObject, opts: WriteOptions): Promise<void>;
  /**
   * Optional: told after a write landed (`obj` undefined: the object is gone; `old` undefined: it
   * was created), so what the old object held and the new one does not can be let go. Never throws.
   */
  committed?(rt: ResourceType, obj: KubeObject | undefined, old: KubeObject | undefined): void;
  /** Optional: a create this admission let through was not written; undo what admitCreate took. Never throws. */
  aborted?(rt: ResourceType, obj: KubeObject): void;
}

export interface WriteOptions {
  dryRun?: boolean;
  /** Who asks, for admission that depends on it (RBAC's escalation check); absent for the server's own writes. */
  user?: UserInfo;
  /** Where admission may add warnings for the client (sent as Warning headers); absent: none are wanted. */
  warnings?: string[];
  /** The field manager the write is recorded under in managedFields; absent: the server's own write. */
  fieldManager?: string;
  /** Server-side apply already set the object's managedFields: record nothing more. */
  applied?: boolean;
}

/** managedFields' name for writes the server makes on its own. */
const serverManager = 'kube-apiserver';

function writer(rt: ResourceType, opts: WriteOptions, subresource?: string): Writer {
  return { manager: opts.fieldManager ?? serverManager, apiVersion: groupVersion(rt), subresource };
}

export interface DeleteOptions extends WriteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface Selection {
  labels: LabelSelector;
  fields: FieldRequirement[];
}

export interface ListQuery extends Selection {
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface ListOutcome {
  items: KubeObject[];
  resourceVersion: string;
  continueToken?: string;
  remainingItemCount?: number;
}

const nameChars = 'bcdfghjklmnpqrstvwxz2456789';
/** Keys read from the store per round trip when listing. */
const readPage = 1000;

export function notFound(rt: ResourceType, name: string): KubicleError {
  return new KubicleError('NotFound', `${qualifiedResource(rt)} "${name}" not found`);
}

export function conflict(rt: ResourceType, name: string): KubicleError {
  return new KubicleError(
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(rt)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
  );
}

export function objectFields(rt: ResourceType, obj: KubeObject): Record<string, string> {
  const f: Record<string, string> = { 'metadata.name': obj.metadata.name ?? '', 'metadata.namespace': obj.metadata.namespace ?? '' };
  for (const [k, fn] of Object.entries(rt.fields ?? {})) f[k] = fn(obj);
  return f;
}

export function selects(rt: ResourceType, sel: Selection, obj: KubeObject): boolean {
  return matchesLabels(sel.labels, obj.metadata.labels) && (sel.fields.length === 0 || matchesFields(sel.fields, objectFields(rt, obj)));
}

export function checkFieldSelector(rt: ResourceType, fields: FieldRequirement[]): void {
  for (const r of fields) {
    if (r.field !== 'metadata.name' && r.field !== 'metadata.namespace' && !rt.fields?.[r.field]) {
      throw new KubicleError('BadRequest', `field label not supported: ${r.field}`);
    }
  }
}

interface ContinueToken {
  rv: number;
  start: string;
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', ...t })).toString('base64url');
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString());
    if (typeof t.rv !== 'number' || typeof t.start !== 'string') throw new Error('shape');
    return t;
  } catch {
    throw new KubicleError('BadRequest', 'continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  }
}

function parseRv(rv: string): number {
  if (!/^\d+$/.test(rv)) throw new KubicleError('BadRequest', `invalid resource version: ${rv}`);
  return Number(rv);
}

export class ObjectStore {
  constructor(
    readonly backend: Backend,
    private readonly admission: Admission[] = [],
  ) {}

  /**
   * Reads one object. resourceVersion unset or "0": the latest. "N": not older than N (the
   * latest, as long as the store has reached N; else TooNew, like upstream's 504).
   */
  async get(rt: ResourceType, ns: string | undefined, name: string, resourceVersion?: string): Promise<KubeObject> {
    if (resourceVersion && resourceVersion !== '0') {
      const rv = parseRv(resourceVersion);
      const current = await this.backend.currentRevision();
      if (rv > current) throw new KubicleError('TooNew', `Too large resource version: ${rv}, current: ${current}`);
    }
    const kv = await this.backend.get(keyFor(rt, ns, name));
    if (!kv) throw notFound(rt, name);
    return present(rt, decode(kv));
  }

  async list(rt: ResourceType, ns: string | undefined, q: ListQuery): Promise<ListOutcome> {
    const prefix = prefixFor(rt, ns);
    let revision = 0;
    let start = prefix;
    if (q.continueToken) {
      const t = decodeContinue(q.continueToken);
      revision = t.rv;
      start = prefix + t.start;
      if (!start.startsWith(prefix)) throw new KubicleError('BadRequest', 'continue key is not valid');
    } else if (q.resourceVersion && q.resourceVersion !== '0') {
      const rv = parseRv(q.resourceVersion);
      const current = await this.backend.currentRevision();
      if (rv > current) throw new KubicleError('TooNew', `Too large resource version: ${rv}, current: ${current}`);
      // Exact, or paginated: read at that revision. NotOlderThan: the latest will do.
      if (q.resourceVersionMatch === 'Exact' || (q.limit && q.resourceVersionMatch !== 'NotOlderThan')) revision = rv;
    }
    const limit = q.limit && q.limit > 0 ? q.limit : 0;
    const items: KubeObject[] = [];
    let more = false;
    let lastKey = '';
    let readAt = revision;
    try {
      for (;;) {
        // Read in pages at one revision: a store's single response has a size cap (etcd's gRPC).
        const pageSize = limit ? Math.min(Math.max(limit - items.length, 1) * 2, readPage) : readPage;
        const page = await this.backend.list(prefix, { revision: readAt || undefined, startKey: start, limit: pageSize });
        readAt = page.revision;
        more = page.more;
        for (const kv of page.items) {
          lastKey = kv.key;
          const obj = present(rt, decode(kv));
          if (selects(rt, q, obj)) items.push(obj);
          if (limit && items.length >= limit) {
            more = page.more || kv !== page.items[page.items.length - 1];
            break;
          }
        }
        if ((limit && items.length >= limit) || !page.more) break;
        start = `${lastKey}\0`;
      }
    } catch (err) {
      if (isCode(err, 'Gone') && q.continueToken) {
        throw new KubicleError(
          'Gone',
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
        );
      }
      throw err;
    }
    const out: ListOutcome = { items, resourceVersion: String(readAt) };
    if (limit && more) out.continueToken = encodeContinue({ rv: readAt, start: `${lastKey.slice(prefix.length)}\0` });
    return out;
  }

  /** Creates an object. Takes ownership of `body` (it is completed in place and returned). */
  async create(rt: ResourceType, ns: string | undefined, body: KubeObject, opts: WriteOptions = {}): Promise<KubeObject> {
    const obj = body;
    const meta = obj.metadata;
    if (rt.namespaced) {
      if (meta.namespace && ns && meta.namespace !== ns) {
        throw new KubicleError('BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      meta.namespace = ns ?? meta.namespace;
    } else delete meta.namespace;
    const generate = !meta.name && meta.generateName ? () => meta.generateName + Array.from({ length: 5 }, () => nameChars[Math.floor(Math.random() * nameChars.length)]).join('') : undefined;
    if (generate) meta.name = generate();
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.selfLink;
    if (rt.generation) meta.generation = 1;
    else delete meta.generation;
    if (rt.status && !rt.keepStatusOnCreate) delete obj.status;
    rt.defaults?.(obj);
    rt.prepareForCreate?.(obj);
    if (!opts.applied) meta.managedFields = trackUpdate(shapeFor(rt), undefined, obj, writer(rt, opts), now(), rt.status);
    this.validate(rt, obj);
    const admitted: Admission[] = [];
    try {
      for (const a of this.admission) {
        await a.admitCreate(rt, obj, opts);
        admitted.push(a);
      }
      if (opts.dryRun) {
        for (const a of admitted) a.aborted?.(rt, obj);
        return obj;
      }
      let kv: Awaited<ReturnType<typeof this.backend.create>>;
      for (let attempt = 1; ; attempt++) {
        try {
          kv = await this.backend.create(keyFor(rt, meta.namespace, meta.name!), encode(toStorage(rt, obj)));
          break;
        } catch (err) {
          // A generated name already taken is generated anew, up to 7 more times, as upstream does
          // since 1.30 (RetryGenerateName): five random characters collide among a few thousand names.
          if (!generate || attempt > 7 || !isCode(err, 'AlreadyExists')) throw err;
          meta.name = generate();
        }
      }
      meta.resourceVersion = String(kv.modRevision);
      for (const a of admitted) a.committed?.(rt, obj, undefined);
      return obj;
    } catch (err) {
      for (const a of admitted) a.aborted?.(rt, obj);
      if (isCode(err, 'AlreadyExists')) throw new KubicleError('AlreadyExists', `${qualifiedResource(rt)} "${meta.name}" already exists`);
      throw err;
    }
  }

  /**
   * Reads the object, lets `mutate` produce the new one (in rt's version), and writes it back
   * at the read revision; if another write came first, reads again and retries. A resourceVersion
   * the caller pinned is checked against each read, so a pinned write that lost the race is a 409.
   * `subresource` "status" keeps everything but status; main writes keep the old status.
   */
  async update(
    rt: ResourceType,
    ns: string | undefined,
    name: string,
    mutate: (current: KubeObject) => KubeObject | Promise<KubeObject>,
    opts: WriteOptions & { subresource?: string; allowSpecChange?: boolean } = {},
  ): Promise<KubeObject> {
    const key = keyFor(rt, ns, name);
    for (let attempt = 0; ; attempt++) {
      const kv = await this.backend.get(key);
      if (!kv) throw notFound(rt, name);
      const current = present(rt, decode(kv));
      const proposed = await mutate(deepClone(current));
      const pinned = proposed.metadata?.resourceVersion;
      if (pinned && pinned !== current.metadata.resourceVersion) throw conflict(rt, name);
      const appliedFields = proposed.metadata?.managedFields;
      const next = this.prepareUpdate(rt, proposed, current, opts.subresource, opts.allowSpecChange);
      if (opts.applied) next.metadata.managedFields = appliedFields;
      if (deepEqual(next, current)) return current;
      if (!opts.applied) next.metadata.managedFields = trackUpdate(shapeFor(rt), current, next, writer(rt, opts, opts.subresource), now(), rt.status);
      if (deepEqual(next, current)) return current;
      if (opts.subresource !== 'status') for (const a of this.admission) await a.admitUpdate?.(rt, next, current, opts);
      if (opts.dryRun) return next;
      try {
        if (this.readyToDelete(rt, next)) {
          const gone = await this.backend.delete(key, kv.modRevision);
          next.metadata.resourceVersion = String(gone.modRevision);
          for (const a of this.admission) a.committed?.(rt, undefined, current);
          return next;
        }
        const written = await this.backend.update(key, encode(toStorage(rt, next)), kv.modRevision);
        next.metadata.resourceVersion = String(written.modRevision);
        for (const a of this.admission) a.committed?.(rt, next, current);
        return next;
      } catch (err) {
        // Written meanwhile: read again and let `mutate` decide. A caller's pinned resourceVersion
        // then no longer matches (409, as upstream); a patch applies to the newer object. Every
        // lost round means another writer won, so this ends; like upstream's GuaranteedUpdate it
        // has no small cap (N concurrent writers may each lose N-1 times).
        if (isCode(err, 'Conflict') && attempt < 1000) continue;
        if (isCode(err, 'Conflict')) throw conflict(rt, name);
        if (isCode(err, 'NotFound')) throw notFound(rt, name);
        throw err;
      }
    }
  }

  /** `trusted`: the change comes from the server itself (pods/binding), past kind update rules. */
  private prepareUpdate(rt: ResourceType, proposed: KubeObject, old: KubeObject, subresource?: string, trusted = false): KubeObject {
    if (!proposed || typeof proposed !== 'object' || typeof proposed.metadata !== 'object' || proposed.metadata === null) {
      throw new KubicleError('BadRequest', 'the object provided is unrecognized (must be an object with metadata)');
    }
    const name = old.metadata.name;
    if (proposed.metadata.name !== undefined && proposed.metadata.name !== name) {
      throw new KubicleError('BadRequest', `the name of the object (${proposed.metadata.name}) does not match the name on the URL (${name})`);
    }
    if (rt.namespaced && proposed.metadata.namespace !== undefined && proposed.metadata.namespace !== old.metadata.namespace) {
      throw new KubicleError('BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    let next: KubeObject;
    if (subresource === 'status') {
      next = deepClone(old);
      next.status = proposed.status;
    } else {
      next = proposed;
      if (rt.status) next.status = old.status;
    }
    const m = next.metadata;
    const o = old.metadata;
    m.name = o.name;
    if (rt.namespaced) m.namespace = o.namespace;
    m.uid = o.uid;
    m.creationTimestamp = o.creationTimestamp;
    m.resourceVersion = o.resourceVersion;
    for (const k of ['deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'] as const) {
      if (o[k] === undefined) delete m[k];
      else m[k] = o[k] as never;
    }
    next.apiVersion = old.apiVersion;
    next.kind = old.kind;
    if (subresource !== 'status') rt.prepareForUpdate?.(next, old);
    rt.defaults?.(next);
    if (rt.generation && subresource !== 'status') {
      const strip = (x: KubeObject) => {
        const { metadata: _m, status: _s, ...rest } = x;
        return rest;
      };
      if (!deepEqual(strip(next), strip(old))) m.generation = (o.generation ?? 0) + 1;
    }
    const errs = new FieldErrors();
    if (o.deletionTimestamp) {
      const added = (m.finalizers ?? []).filter((f) => !(o.finalizers ?? []).includes(f));
      if (added.length) {
        errs.forbidden('metadata.finalizers', `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => `"${f}"`).join(', ')}}`);
      }
    }
    this.validate(rt, next, errs, old);
    if (subresource !== 'status' && !trusted) rt.validateUpdate?.(next, old, errs);
    errs.throwIfAny(qualifiedKind(rt), name);
    return next;
  }

  /**
   * Validates an object admission changed after the store validated it (mutating webhooks):
   * the object rules, and for an update the rules on changing `old`.
   */
  revalidate(rt: ResourceType, obj: KubeObject, old?: KubeObject): void {
    const errs = new FieldErrors();
    if (old) rt.validateUpdate?.(obj, old, errs);
    this.validate(rt, obj, errs, old);
  }

  private validate(rt: ResourceType, obj: KubeObject, errs = new FieldErrors(), old?: KubeObject): void {
    const m = obj.metadata;
    if (!m.name) errs.required('metadata.name', 'name or generateName is required');
    else for (const e of nameErrors(rt.nameRule, m.name)) errs.invalid('metadata.name', m.name, e);
    if (rt.namespaced && !m.namespace) errs.required('metadata.namespace');
    validateLabels(m.labels, 'metadata.labels', errs);
    validateAnnotations(m.annotations, 'metadata.annotations', errs);
    (m.finalizers ?? []).forEach((f, i) => {
      for (const e of qualifiedNameErrors(String(f))) errs.invalid(`metadata.finalizers[${i}]`, f, e);
    });
    (m.ownerReferences ?? []).forEach((r, i) => {
      for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const) if (!r?.[f]) errs.required(`metadata.ownerReferences[${i}].${f}`);
    });
    if ((m.ownerReferences ?? []).filter((r) => r?.controller).length > 1) errs.invalid('metadata.ownerReferences', m.ownerReferences, 'Only one reference can have Controller set to true');
    rt.validate?.(obj, errs, old);
    errs.throwIfAny(qualifiedKind(rt), m.name);
  }

  private readyToDelete(rt: ResourceType, obj: KubeObject): boolean {
    const m = obj.metadata;
    return !!m.deletionTimestamp && !m.finalizers?.length && !(rt.systemFinalizers?.(obj).length ?? 0) && (m.deletionGracePeriodSeconds ?? 0) === 0;
  }

  /**
   * Deletes an object, or marks it for deletion when finalizers or a grace period hold it.
   * Resolves the object and whether it is gone now.
   */
  async delete(rt: ResourceType, ns: string | undefined, name: string, opts: DeleteOptions = {}): Promise<{ obj: KubeObject; gone: boolean }> {
    const key = keyFor(rt, ns, name);
    for (let attempt = 0; ; attempt++) {
      const kv = await this.backend.get(key);
      if (!kv) throw notFound(rt, name);
      const current = present(rt, decode(kv));
      const pre = opts.preconditions;
      if (pre?.uid && pre.uid !== current.metadata.uid) {
        throw new KubicleError(
          'Conflict',
          `Operation cannot be fulfilled on ${qualifiedResource(rt)} "${name}": Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`,
        );
      }
      if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion) {
        throw new KubicleError(
          'Conflict',
          `Operation cannot be fulfilled on ${qualifiedResource(rt)} "${name}": Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in meta: ${current.metadata.resourceVersion}`,
        );
      }
      if (attempt === 0) for (const a of this.admission) await a.admitDelete(rt, current, opts);
      const next = deepClone(current);
      const m = next.metadata;
      const finalizers = new Set(m.finalizers ?? []);
      if (opts.propagationPolicy === 'Orphan') {
        finalizers.add('orphan');
        finalizers.delete('foregroundDeletion');
      } else if (opts.propagationPolicy === 'Foreground') {
        finalizers.add('foregroundDeletion');
        finalizers.delete('orphan');
      } else if (opts.propagationPolicy === 'Background') {
        finalizers.delete('orphan');
        finalizers.delete('foregroundDeletion');
      }
      const grace = rt.gracePeriod ? rt.gracePeriod(current, opts.gracePeriodSeconds) : 0;
      const system = rt.systemFinalizers?.(current) ?? [];
      const mustWait = finalizers.size > 0 || system.length > 0 || grace > 0;
      try {
        if (!mustWait) {
          if (opts.dryRun) return { obj: current, gone: true };
          const gone = await this.backend.delete(key, kv.modRevision);
          current.metadata.resourceVersion = String(gone.modRevision);
          for (const a of this.admission) a.committed?.(rt, undefined, current);
          return { obj: current, gone: true };
        }
        // Graceful: set or shorten the deletion timestamp, keep the object for its finalizers.
        const already = m.deletionTimestamp !== undefined;
        if (!already || (m.deletionGracePeriodSeconds ?? 0) > grace) {
          m.deletionTimestamp = isoAfter(grace);
          m.deletionGracePeriodSeconds = grace;
        }
        if (finalizers.size) m.finalizers = [...finalizers];
        else delete m.finalizers;
        if (!already) rt.markDeleting?.(next);
        if (rt.generation && !already) m.generation = (m.generation ?? 0) + 1;
        if (deepEqual(next, current)) return { obj: current, gone: false };
        if (opts.dryRun) return { obj: next, gone: false };
        const written = await this.backend.update(key, encode(toStorage(rt, next)), kv.modRevision);
        m.resourceVersion = String(written.modRevision);
        return { obj: next, gone: false };
      } catch (err) {
        if (isCode(err, 'Conflict') && attempt < 10) continue;
        if (isCode(err, 'NotFound')) throw notFound(rt, name);
        throw err;
      }
    }
  }

  async deleteCollection(rt: ResourceType, ns: string | undefined, sel: Selection, opts: DeleteOptions = {}): Promise<KubeObject[]> {
    const { items } = await this.list(rt, ns, { ...sel });
    const out: KubeObject[] = [];
    for (const item of items) {
      try {
        out.push((await this.delete(rt, item.metadata.namespace, item.metadata.name!, opts)).obj);
      } catch (err) {
        if (!isCode(err, 'NotFound')) throw err;
      }
    }
    return out;
  }
}

