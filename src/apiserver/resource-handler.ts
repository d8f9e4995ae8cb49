import type { IncomingMessage, ServerResponse } from 'node:http';
import { applyConfig } from '../api/apply/managed-fields.js';
import { shapeFor } from '../api/apply/shape.js';
import { kindDefinitions } from '../api/generated/schemas.js';
import { isPlainObject, type KubeObject } from '../api/object.js';
import { jsonPatch } from '../api/patch/json-patch.js';
import { mergePatch } from '../api/patch/merge-patch.js';
import { strategicMergePatch } from '../api/patch/strategic-merge-patch.js';
import type { Registry } from '../api/registry.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';
import { parseFieldSelector, parseLabelSelector } from '../api/selectors.js';
import { now } from '../api/time.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { UserInfo } from './authn.js';
import { decodeDocument, decodeObject, duplicateJsonKeys, mediaType, readBody } from './body.js';
import type { Evictor } from './eviction.js';
import type { FieldChecker } from './field-validation.js';
import { negotiate, type Rendering } from './negotiate.js';
import { checkFieldSelector, type DeleteOptions, type ObjectStore, type Selection, type WriteOptions } from './object-store.js';
import type { PodLogs } from './pod-logs.js';
import { protobufMediaType } from './protobuf/decode.js';
import type { ResourceRequest } from './request-info.js';
import { sendJson } from './respond.js';
import { applyScale, toScale } from './scale.js';
import { type IncludeObject, tableContentType, toTable } from './table.js';
import type { WatchCache } from './watch-cache.js';
import { serveWatch } from './watch-handler.js';

/**
 * The resource verbs over HTTP: get, list, watch, create, update, patch, delete and
 * deletecollection, with the status, scale and finalize subresources. Bodies are decoded and
 * checked here; semantics live in ObjectStore.
 */
type Validation = 'Strict' | 'Warn' | 'Ignore';

/** Creates answered by the server rather than stored: the review kinds and serviceaccounts/token. */
export interface AnsweredCreates {
  review(rt: ResourceType, ns: string | undefined, body: KubeObject, user: UserInfo): Promise<KubeObject>;
  requestToken(ns: string, serviceAccount: string, body: KubeObject): Promise<KubeObject>;
}

export class ResourceHandler {
  constructor(
    private readonly registry: Registry,
    private readonly store: ObjectStore,
    private readonly cache: WatchCache,
    private readonly fields: FieldChecker,
    private readonly evictor: Evictor,
    private readonly podLogs: PodLogs,
    private readonly answered: AnsweredCreates,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse, r: ResourceRequest, q: URLSearchParams, user: UserInfo): Promise<void> {
    const rt = this.registry.lookup(r.group, r.version, r.resource);
    if (!rt || (r.namespace !== undefined && !rt.namespaced)) throw new KubicleError('NotFound', 'the server could not find the requested resource');
    const sub = r.subresource;
    const isPods = rt.plural === 'pods' && rt.group === '';
    if (
      sub &&
      !(sub === 'status' && rt.status) &&
      !(sub === 'scale' && rt.scale) &&
      !(sub === 'finalize' && rt.plural === 'namespaces' && rt.group === '') &&
      !(sub === 'binding' && isPods) &&
      !(sub === 'eviction' && isPods) &&
      !(sub === 'log' && isPods) &&
      !(sub === 'token' && rt.plural === 'serviceaccounts' && rt.group === '')
    ) {
      if (isPods && r.name && (sub === 'exec' || sub === 'attach' || sub === 'portforward')) throw new KubicleError('BadRequest', 'Upgrade request required');
      throw new KubicleError('NotFound', 'the server could not find the requested resource');
    }
    const ns = rt.namespaced ? r.namespace : undefined;
    const m = req.method ?? 'GET';
    if (rt.verbs) {
      if (m !== 'POST' || r.name || !rt.verbs.includes('create')) throw new KubicleError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
      const body = decodeObject(await readBody(req), mediaType(req)) as KubeObject;
      return sendJson(res, 201, await this.answered.review(rt, ns, body, user));
    }
    if (sub === 'token') {
      if (m !== 'POST' || !r.name || !ns) throw new KubicleError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
      const body = decodeObject(await readBody(req), mediaType(req)) as KubeObject;
      return sendJson(res, 201, await this.answered.requestToken(ns, r.name, body));
    }
    if (rt.namespaced && r.name && !ns) throw new KubicleError('NotFound', 'the server could not find the requested resource');
    if (m === 'GET') {
      const rendering = negotiate(req);
      if (q.get('watch') === 'true' || q.get('watch') === '1') return this.watch(req, res, rt, ns, r.name, q, rendering);
      if (!r.name) return this.list(res, rt, ns, q, rendering);
      if (sub === 'log') return this.podLogs.serve(req, res, ns as string, r.name, q);
      const obj = await this.store.get(rt, ns, r.name, q.get('resourceVersion') ?? undefined);
      if (sub === 'scale') return sendJson(res, 200, toScale(rt, obj));
      return this.render(res, 200, rt, obj, rendering, q);
    }
    const w: WriteOptions = { dryRun: parseDryRun(q), user, fieldManager: fieldManager(req, q) };
    if (m === 'POST') {
      if (r.name && sub === 'binding') return this.bind(req, res, rt, ns!, r.name, w);
      if (r.name && sub === 'eviction') {
        await this.evictor.evict(rt, ns!, r.name, decodeObject(await readBody(req), mediaType(req)) as KubeObject);
        return sendJson(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
      }
      if (r.name) throw new KubicleError('MethodNotAllowed', `the server does not allow this method on the requested resource`);
      const { obj, warnings } = await this.decodeFor(req, rt, q, true);
      const created = await this.store.create(rt, ns, obj, { ...w, warnings });
      return sendJson(res, 201, created, 'application/json', unique(warnings));
    }
    if (m === 'PUT') {
      if (!r.name) throw new KubicleError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
      if (sub === 'scale') {
        const scale = decodeObject(await readBody(req), mediaType(req)) as KubeObject;
        const out = await this.store.update(rt, ns, r.name, (cur) => applyScale(rt, cur, scale), { ...w, subresource: 'scale' });
        return sendJson(res, 200, toScale(rt, out));
      }
      const { obj, warnings } = await this.decodeFor(req, rt, q, true);
      const mutate =
        sub === 'finalize'
          ? (cur: KubeObject) => {
              cur.spec = { ...(cur.spec ?? {}), finalizers: obj.spec?.finalizers ?? [] };
              if (obj.metadata?.resourceVersion) cur.metadata.resourceVersion = obj.metadata.resourceVersion;
              return cur;
            }
          : () => obj;
      const out = await this.store.update(rt, ns, r.name, mutate, { ...w, warnings, subresource: sub === 'status' ? 'status' : undefined });
      return sendJson(res, 200, out, 'application/json', unique(warnings));
    }
    if (m === 'PATCH') {
      if (!r.name) throw new KubicleError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
      return this.patch(req, res, rt, ns, r.name, sub, q, w);
    }
    if (m === 'DELETE') {
      const opts = { ...(await this.deleteOptions(req, q, w.dryRun ?? false)), user };
      if (!r.name) {
        const sel = selection(rt, q);
        const items = await this.store.deleteCollection(rt, ns, sel, opts);
        return sendJson(res, 200, { kind: `${rt.kind}List`, apiVersion: groupVersion(rt), metadata: {}, items });
      }
      const { obj, gone } = await this.store.delete(rt, ns, r.name, opts);
      return sendJson(res, gone ? 200 : 202, obj);
    }
    throw new KubicleError('MethodNotAllowed', 'the server does not allow this method on the requested resource');
  }

  /**
   * pods/binding: assigns an unassigned pod to a node (what a scheduler does). A pod already
   * assigned gets 409 like upstream.
   */
  private async bind(req: IncomingMessage, res: ServerResponse, rt: ResourceType, ns: string, name: string, w: WriteOptions): Promise<void> {
    const binding = decodeObject(await readBody(req), mediaType(req)) as KubeObject;
    if (binding.kind !== 'Binding') throw new KubicleError('BadRequest', `the object provided is unrecognized (must be of type Binding): ${String(binding.kind)}`);
    const node = binding.target?.name;
    if (!node || (binding.target?.kind && binding.target.kind !== 'Node')) {
      throw new KubicleError('Invalid', `Binding "${name}" is invalid: target.name: Required value`, { causes: [{ reason: 'FieldValueRequired', field: 'target.name', message: 'Required value' }] });
    }
    if (binding.metadata?.name && binding.metadata.name !== name) throw new KubicleError('BadRequest', `the name of the object (${binding.metadata.name}) does not match the name on the URL (${name})`);
    await this.store.update(
      rt,
      ns,
      name,
      (pod) => {
        if (pod.metadata.deletionTimestamp) throw new KubicleError('Conflict', `pod ${name} is being deleted, cannot be assigned to a host`);
        if (pod.spec?.nodeName) throw new KubicleError('Conflict', `pod ${name} is already assigned to node "${pod.spec.nodeName}"`);
        pod.spec.nodeName = node;
        return pod;
      },
      { ...w, allowSpecChange: true },
    );
    sendJson(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
  }

  private render(res: ServerResponse, code: number, rt: ResourceType, obj: KubeObject, rendering: Rendering, q: URLSearchParams): void {
    if (rendering.as === 'table') {
      sendJson(res, code, toTable(rt, [obj], { version: rendering.version, include: includeObject(q), resourceVersion: obj.metadata.resourceVersion }), tableContentType(rendering.version));
    } else sendJson(res, code, obj);
  }

  private async list(res: ServerResponse, rt: ResourceType, ns: string | undefined, q: URLSearchParams, rendering: Rendering): Promise<void> {
    const sel = selection(rt, q);
    const limit = q.get('limit') ? Number(q.get('limit')) : undefined;
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 0)) throw new KubicleError('BadRequest', `invalid limit: ${q.get('limit')}`);
    const out = await this.store.list(rt, ns, {
      ...sel,
      limit,
      continueToken: q.get('continue') || undefined,
      resourceVersion: q.get('resourceVersion') ?? undefined,
      resourceVersionMatch: q.get('resourceVersionMatch') ?? undefined,
    });
    if (rendering.as === 'table') {
      return sendJson(
        res,
        200,
        toTable(rt, out.items, { version: rendering.version, include: includeObject(q), resourceVersion: out.resourceVersion, continueToken: out.continueToken }),
        tableContentType(rendering.version),
      );
    }
    sendJson(res, 200, {
      kind: `${rt.kind}List`,
      apiVersion: groupVersion(rt),
      metadata: { resourceVersion: out.resourceVersion, ...(out.continueToken ? { continue: out.continueToken } : {}) },
      items: out.items,
    });
  }

  private async watch(req: IncomingMessage, res: ServerResponse, rt: ResourceType, ns: string | undefined, name: string | undefined, q: URLSearchParams, rendering: Rendering) {
    if (q.get('sendInitialEvents') === 'true') throw new KubicleError('BadRequest', 'sendInitialEvents is not supported by this server; list, then watch from the list resourceVersion');
    const sel = selection(rt, q);
    const t = q.get('timeoutSeconds');
    await serveWatch(req, res, rt, this.store, this.cache, {
      ...sel,
      namespace: ns,
      name,
      resourceVersion: q.get('resourceVersion') ?? undefined,
      timeoutSeconds: t ? Number(t) : undefined,
      bookmarks: q.get('allowWatchBookmarks') === 'true',
      rendering,
      include: includeObject(q),
    });
  }

  private async patch(req: IncomingMessage, res: ServerResponse, rt: ResourceType, ns: string | undefined, name: string, sub: string | undefined, q: URLSearchParams, w: WriteOptions) {
    const type = mediaType(req);
    const raw = await readBody(req);
    if (type === applyPatchType) return this.apply(res, rt, ns, name, sub, q, w, raw);
    if (q.has('force')) throw invalidOptions('PatchOptions', [{ reason: 'FieldValueForbidden', field: 'force', message: 'Forbidden: may not be specified for non-apply patch' }]);
    let apply: (target: unknown) => unknown;
    if (type === 'application/json-patch+json') {
      const ops = decodeDocument(raw, type);
      apply = (t) => jsonPatch(t, ops);
    } else if (type === 'application/merge-patch+json') {
      const doc = decodeObject(raw, type);
      apply = (t) => mergePatch(t, doc);
    } else if (type === 'application/strategic-merge-patch+json' && !rt.custom) {
      const doc = decodeObject(raw, type);
      // A scale subresource patches an autoscaling/v1 Scale, which has no lists.
      const definition = sub === 'scale' ? undefined : kindDefinitions[`${groupVersion(rt)}/${rt.kind}`];
      apply = (t) => strategicMergePatch(t, doc, definition);
    } else {
      throw new KubicleError(
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, ${applyPatchType}${rt.custom ? '' : ', application/strategic-merge-patch+json'}`,
      );
    }
    const validation = fieldValidation(q);
    let warnings: string[] = [];
    const admissionWarnings: string[] = [];
    if (sub === 'scale') {
      const out = await this.store.update(rt, ns, name, (cur) => applyScale(rt, cur, apply(toScale(rt, cur)) as KubeObject), { ...w, subresource: 'scale' });
      return sendJson(res, 200, toScale(rt, out));
    }
    const out = await this.store.update(
      rt,
      ns,
      name,
      (cur) => {
        const next = apply(cur);
        if (!isPlainObject(next)) throw new KubicleError('BadRequest', 'the patch did not produce an object');
        warnings = this.checkFields(rt, next as KubeObject, validation);
        return next as KubeObject;
      },
      { ...w, warnings: admissionWarnings, subresource: sub === 'status' ? 'status' : undefined },
    );
    sendJson(res, 200, out, 'application/json', unique([...warnings, ...admissionWarnings]));
  }

  /**
   * Server-side apply: merges the configuration into the live object (creating it if there is
   * none) and records it as the field manager's applied set. Conflicts are 409s unless ?force=true.
   */
  private async apply(res: ServerResponse, rt: ResourceType, ns: string | undefined, name: string, sub: string | undefined, q: URLSearchParams, w: WriteOptions, raw: Buffer) {
    if (sub && sub !== 'status') throw new KubicleError('UnsupportedMediaType', `server-side apply is not supported on the ${sub} subresource`);
    if (!q.get('fieldManager')) throw invalidOptions('PatchOptions', [{ reason: 'FieldValueRequired', field: 'fieldManager', message: 'Required value: is required for apply patch' }]);
    const force = q.get('force') ?? 'false';
    if (force !== 'true' && force !== 'false') throw new KubicleError('BadRequest', `force must be true or false, got ${force}`);
    const { obj: config, warnings } = this.checkDocument(rt, raw, applyPatchType, fieldValidation(q), true);
    if (config.metadata.managedFields !== undefined) throw new KubicleError('BadRequest', 'metadata.managedFields must be nil');
    if (config.metadata.name !== undefined && config.metadata.name !== name) throw new KubicleError('BadRequest', `the name of the object (${config.metadata.name}) does not match the name on the URL (${name})`);
    const writer = { manager: w.fieldManager as string, apiVersion: groupVersion(rt), subresource: sub };
    const shape = shapeFor(rt);
    const opts = { ...w, applied: true, warnings: [] as string[], subresource: sub };
    const applyTo = (live: KubeObject | undefined) => {
      const out = applyConfig(shape, live, structuredClone(config), writer, force === 'true', now(), rt.status);
      out.object.metadata.managedFields = out.managedFields;
      return out.object;
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await this.store.update(rt, ns, name, applyTo, opts);
        return sendJson(res, 200, out, 'application/json', unique([...warnings, ...opts.warnings]));
      } catch (err) {
        if (!isCode(err, 'NotFound') || sub) throw err;
      }
      try {
        const created = await this.store.create(rt, ns, applyTo(undefined), opts);
        return sendJson(res, 201, created, 'application/json', unique([...warnings, ...opts.warnings]));
      } catch (err) {
        // Created by someone else meanwhile: apply to theirs.
        if (!isCode(err, 'AlreadyExists') || attempt > 2) throw err;
      }
    }
  }

  /** Decodes a full object body for `rt`, checking its kind, version and (per fieldValidation) its fields. */
  private async decodeFor(req: IncomingMessage, rt: ResourceType, q: URLSearchParams, requireKind: boolean): Promise<{ obj: KubeObject; warnings: string[] }> {
    const type = mediaType(req);
    if (type !== 'application/json' && type !== 'application/yaml' && type !== protobufMediaType && type !== '*/*') {
      throw new KubicleError(
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, ${protobufMediaType}`,
      );
    }
    return this.checkDocument(rt, await readBody(req), type, fieldValidation(q), requireKind);
  }

  private checkDocument(rt: ResourceType, raw: Buffer, type: string, validation: Validation, requireKind: boolean): { obj: KubeObject; warnings: string[] } {
    const doc = decodeObject(raw, type);
    const warnings: string[] = [];
    if (validation !== 'Ignore' && type === 'application/json') {
      const dups = duplicateJsonKeys(raw.toString('utf8'));
      if (dups.length) {
        const msgs = dups.map((d) => `duplicate field "${d}"`);
        if (validation === 'Strict') throw new KubicleError('BadRequest', `strict decoding error: ${msgs.join(', ')}`);
        warnings.push(...msgs);
      }
    }
    if (requireKind) {
      if (!doc.kind) throw new KubicleError('BadRequest', `Object 'Kind' is missing in '${raw.toString('utf8').slice(0, 200)}'`);
      const gv = groupVersion(rt);
      if (doc.apiVersion !== gv || doc.kind !== rt.kind) {
        const other = this.registry.byApiVersionKind(String(doc.apiVersion), String(doc.kind));
        if (!other && doc.kind === rt.kind) throw new KubicleError('BadRequest', `the API version in the data (${String(doc.apiVersion)}) does not match the expected API version (${gv})`);
        throw new KubicleError('BadRequest', `the object provided is unrecognized (must be of type ${rt.kind}): ${String(doc.kind)} in version "${String(doc.apiVersion)}" cannot be handled as a ${rt.kind}`);
      }
    }
    if (doc.metadata === undefined) doc.metadata = {};
    if (!isPlainObject(doc.metadata)) throw new KubicleError('BadRequest', `${rt.kind} in version "${rt.version}" cannot be handled as a ${rt.kind}: metadata must be an object`);
    warnings.push(...this.checkFields(rt, doc as KubeObject, validation));
    return { obj: doc as KubeObject, warnings };
  }

  private checkFields(rt: ResourceType, obj: KubeObject, validation: Validation): string[] {
    const unknown = this.fields.pruneUnknown(rt, obj);
    if (!unknown.length || validation === 'Ignore') return [];
    const msgs = unknown.map((f) => `unknown field "${f}"`);
    if (validation === 'Strict') throw new KubicleError('BadRequest', `strict decoding error: ${msgs.join(', ')}`);
    return msgs;
  }

  private async deleteOptions(req: IncomingMessage, q: URLSearchParams, dryRun: boolean): Promise<DeleteOptions> {
    const raw = await readBody(req);
    const type = mediaType(req);
    const body: Record<string, unknown> = raw.length && raw.toString().trim() ? decodeObject(raw, type === protobufMediaType ? type : 'application/json') : {};
    const grace = q.get('gracePeriodSeconds') ?? body.gracePeriodSeconds;
    const policy = (q.get('propagationPolicy') ?? body.propagationPolicy) as DeleteOptions['propagationPolicy'] | undefined;
    if (policy && !['Orphan', 'Background', 'Foreground'].includes(policy)) {
      throw new KubicleError('Invalid', `DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "${policy}": supported values: "Foreground", "Background", "Orphan"`);
    }
    let propagation = policy;
    if (!propagation && (q.get('orphanDependents') === 'true' || body.orphanDependents === true)) propagation = 'Orphan';
    const dry = dryRun || (Array.isArray(body.dryRun) && body.dryRun.includes('All'));
    return {
      dryRun: dry,
      gracePeriodSeconds: grace === undefined || grace === null ? undefined : Number(grace),
      propagationPolicy: propagation,
      preconditions: body.preconditions as DeleteOptions['preconditions'],
    };
  }
}

/** Warnings once each: an update retried after a conflict runs admission again. */
function unique(warnings: string[]): string[] {
  return [...new Set(warnings)];
}

function selection(rt: ResourceType, q: URLSearchParams): Selection {
  const fields = parseFieldSelector(q.get('fieldSelector'));
  checkFieldSelector(rt, fields);
  return { labels: parseLabelSelector(q.get('labelSelector')), fields };
}

const applyPatchType = 'application/apply-patch+yaml';

/** Upstream's 422 for bad request options (PatchOptions, CreateOptions, UpdateOptions). */
function invalidOptions(kind: string, causes: { reason: string; field: string; message: string }[]): KubicleError {
  return new KubicleError('Invalid', `${kind}.meta.k8s.io "" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`, { causes });
}

/**
 * The field manager a write is recorded under: ?fieldManager, else the client's User-Agent up to
 * its first "/" (kubectl, kube-controller-manager), as upstream.
 */
function fieldManager(req: IncomingMessage, q: URLSearchParams): string {
  const asked = q.get('fieldManager');
  const name = asked || (req.headers['user-agent'] ?? '').split('/')[0].slice(0, 128) || 'unknown';
  if (name.length > 128) throw invalidOptions('PatchOptions', [{ reason: 'FieldValueTooLong', field: 'fieldManager', message: 'Too long: may not be longer than 128' }]);
  const bad = [...name].findIndex((ch) => /[\p{C}]/u.test(ch));
  if (bad >= 0) {
    throw invalidOptions('PatchOptions', [
      { reason: 'FieldValueInvalid', field: 'fieldManager', message: `Invalid value: ${JSON.stringify(name)}: invalid character at position ${bad}` },
    ]);
  }
  return name;
}

function parseDryRun(q: URLSearchParams): boolean {
  const v = q.getAll('dryRun');
  for (const x of v) if (x !== 'All') throw new KubicleError('BadRequest', `Invalid dryRun value "${x}": supported values: "All"`);
  return v.length > 0;
}

function fieldValidation(q: URLSearchParams): Validation {
  const v = q.get('fieldValidation') ?? 'Warn';
  if (v !== 'Strict' && v !== 'Warn' && v !== 'Ignore') throw new KubicleError('BadRequest', `fieldValidation must be one of Ignore, Warn or Strict, got ${v}`);
  return v;
}

function includeObject(q: URLSearchParams): IncludeObject {
  const v = q.get('includeObject');
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}
