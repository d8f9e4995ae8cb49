import jsonpatch from 'fast-json-patch';
import { admissionGroup } from '../../api/kinds/admissionregistration.js';
import { deepEqual, isPlainObject, type KubeObject } from '../../api/object.js';
import type { Registry } from '../../api/registry.js';
import type { ResourceType } from '../../api/resource-type.js';
import { labelSelectorMatches } from '../../api/selectors.js';
import { KubicleError } from '../../observe/errors.js';
import type { Logger } from '../../observe/log.js';
import type { Admission, ObjectStore, WriteOptions } from '../object-store.js';
import type { WatchCache } from '../watch-cache.js';
import { CachedObjects } from './cached-objects.js';
import { type Attributes, CallFailed, callFailed, callWebhook, denied, type Operation, type Target, type WebhookAnswer } from './webhook-call.js';

/**
 * Admission webhooks (admissionregistration.k8s.io/v1): MutatingWebhooks runs after the
 * built-in mutating plugins, one webhook after another in name order, applying their JSON
 * patches; ValidatingWebhooks runs last, all matching webhooks at once. A webhook is called when
 * a rule matches the operation, group, version, resource and scope, and its namespaceSelector
 * and objectSelector match. Webhook configurations themselves are never sent to webhooks, so a
 * broken webhook can always be removed.
 */
// biome-ignore lint/suspicious/noExplicitAny: untyped JSON
type J = Record<string, any>;

export class WebhookConfigurations {
  readonly mutating: CachedObjects;
  readonly validating: CachedObjects;

  /** `namespaces`: the server's followed Namespaces, for namespaceSelectors. */
  constructor(
    private readonly registry: Registry,
    private readonly namespaces: CachedObjects,
    readonly store: () => ObjectStore,
    readonly log: Logger,
  ) {
    this.mutating = new CachedObjects(registry.mustLookup(admissionGroup, 'v1', 'mutatingwebhookconfigurations'), store);
    this.validating = new CachedObjects(registry.mustLookup(admissionGroup, 'v1', 'validatingwebhookconfigurations'), store);
  }

  async bind(cache: WatchCache): Promise<void> {
    await Promise.all([this.mutating.bind(cache), this.validating.bind(cache)]);
  }

  /** The webhooks of one kind of configuration that match a request, in upstream's order. */
  async matching(from: CachedObjects, a: Attributes): Promise<{ hook: J; config: string }[]> {
    if (a.rt.group === admissionGroup) return [];
    const configs = (await from.list()).sort((x, y) => String(x.metadata.name).localeCompare(String(y.metadata.name)));
    const out: { hook: J; config: string }[] = [];
    let nsLabels: Record<string, string> | undefined | null = null;
    for (const c of configs) {
      for (const hook of (c.webhooks ?? []) as J[]) {
        if (!((hook.rules ?? []) as J[]).some((r) => ruleMatches(r, a))) continue;
        if (!objectSelected(hook.objectSelector, a)) continue;
        if (hook.namespaceSelector && Object.keys(hook.namespaceSelector).length) {
          if (a.rt.group === '' && a.rt.plural === 'namespaces') {
            if (!labelSelectorMatches(hook.namespaceSelector, (a.object ?? a.oldObject)?.metadata.labels)) continue;
          } else if (a.rt.namespaced && a.namespace) {
            if (nsLabels === null) nsLabels = (await this.namespaces.get(a.namespace))?.metadata.labels;
            if (!labelSelectorMatches(hook.namespaceSelector, nsLabels)) continue;
          }
        }
        out.push({ hook, config: String(c.metadata.name) });
      }
    }
    return out;
  }

  /** Calls one webhook; undefined when it failed and its failurePolicy is Ignore. */
  async call(hook: J, a: Attributes): Promise<WebhookAnswer | undefined> {
    if (a.dryRun && hook.sideEffects !== 'None' && hook.sideEffects !== 'NoneOnDryRun') {
      throw new KubicleError('BadRequest', `admission webhook "${hook.name}" does not support dry run`);
    }
    try {
      return await callWebhook(await this.target(hook), a);
    } catch (err) {
      if (!(err instanceof CallFailed)) throw err;
      if (hook.failurePolicy === 'Ignore') {
        this.log.warn('admission webhook failed; ignored by its failurePolicy', { webhook: hook.name, err: err.message });
        return undefined;
      }
      throw callFailed(hook.name, err);
    }
  }

  /** A URL as given, or a Service's first ready endpoint, its certificate checked for the Service's DNS name. */
  private async target(hook: J): Promise<Target> {
    const cc = hook.clientConfig ?? {};
    const caPem = cc.caBundle ? Buffer.from(String(cc.caBundle), 'base64').toString('utf8') : undefined;
    const timeoutMs = (hook.timeoutSeconds ?? 10) * 1000;
    if (cc.url) return { url: new URL(cc.url), caPem, timeoutMs };
    const svc = cc.service as { name: string; namespace: string; port?: number; path?: string };
    const endpoint = await this.serviceEndpoint(svc.namespace, svc.name, svc.port ?? 443);
    if (!endpoint) throw new CallFailed(`failed to call webhook: service "${svc.namespace}/${svc.name}" has no ready endpoint`);
    return { url: new URL(`https://${endpoint.ip}:${endpoint.port}${svc.path ?? ''}`), servername: `${svc.name}.${svc.namespace}.svc`, caPem, timeoutMs };
  }

  private async serviceEndpoint(ns: string, name: string, port: number): Promise<{ ip: string; port: number } | undefined> {
    const store = this.store();
    let service: KubeObject;
    let endpoints: KubeObject;
    try {
      service = await store.get(this.registry.mustLookup('', 'v1', 'services'), ns, name);
      endpoints = await store.get(this.registry.mustLookup('', 'v1', 'endpoints'), ns, name);
    } catch {
      return undefined;
    }
    const sp = ((service.spec?.ports ?? []) as J[]).find((p) => p.port === port);
    if (!sp) return undefined;
    for (const subset of (endpoints.subsets ?? []) as J[]) {
      const ep = ((subset.ports ?? []) as J[]).find((p) => (sp.name ? p.name === sp.name : true));
      const address = ((subset.addresses ?? []) as J[])[0];
      if (ep && address?.ip) return { ip: address.ip, port: ep.port };
    }
    return undefined;
  }
}

function listMatches(values: unknown, want: string): boolean {
  return Array.isArray(values) && (values.includes('*') || values.includes(want));
}

function ruleMatches(r: J, a: Attributes): boolean {
  if (!listMatches(r.operations, a.operation)) return false;
  if (!listMatches(r.apiGroups, a.rt.group) || !listMatches(r.apiVersions, a.rt.version)) return false;
  // Only main resources are admitted here: "pods", "*" and "*/*" match them, "pods/status" does not.
  if (!((r.resources ?? []) as string[]).some((res) => res === a.rt.plural || res === '*' || res === '*/*')) return false;
  const scope = r.scope ?? '*';
  return scope === '*' || (scope === 'Namespaced') === a.rt.namespaced;
}

function objectSelected(selector: J | undefined, a: Attributes): boolean {
  if (!selector || !Object.keys(selector).length) return true;
  return [a.object, a.oldObject].some((o) => o && labelSelectorMatches(selector, o.metadata.labels));
}

function attributes(rt: ResourceType, operation: Operation, obj: KubeObject | undefined, old: KubeObject | undefined, opts: WriteOptions | undefined): Attributes {
  const m = (obj ?? old)?.metadata ?? {};
  return { rt, operation, name: m.name ?? '', namespace: m.namespace, object: obj, oldObject: old, user: opts?.user, dryRun: !!opts?.dryRun };
}

/** The mutating webhooks, one after another; each sees the changes of those before it. */
export class MutatingWebhooks implements Admission {
  constructor(private readonly hooks: WebhookConfigurations) {}

  async admitCreate(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void> {
    await this.mutate(rt, 'CREATE', obj, undefined, opts);
  }

  async admitUpdate(rt: ResourceType, obj: KubeObject, old: KubeObject, opts: WriteOptions): Promise<void> {
    await this.mutate(rt, 'UPDATE', obj, old, opts);
  }

  async admitDelete(): Promise<void> {}

  private async mutate(rt: ResourceType, op: Operation, obj: KubeObject, old: KubeObject | undefined, opts: WriteOptions): Promise<void> {
    const a = attributes(rt, op, obj, old, opts);
    const hooks = await this.hooks.matching(this.hooks.mutating, a);
    if (!hooks.length) return;
    const before = structuredClone(obj);
    for (const { hook } of hooks) {
      const answer = await this.hooks.call(hook, { ...a, object: obj });
      if (!answer) continue;
      opts.warnings?.push(...answer.warnings);
      if (!answer.allowed) throw denied(hook.name, answer);
      if (!answer.patch?.length) continue;
      let patched: unknown;
      try {
        patched = jsonpatch.applyPatch(structuredClone(obj), answer.patch as jsonpatch.Operation[], true, false).newDocument;
      } catch (err) {
        throw callFailed(hook.name, new Error(`received invalid webhook response: the patch could not be applied: ${(err as Error).message.split('\n')[0]}`));
      }
      if (!isPlainObject(patched) || !isPlainObject(patched.metadata)) throw callFailed(hook.name, new Error('received invalid webhook response: the patch did not leave an object'));
      // The object is the caller's: change it in place.
      for (const k of Object.keys(obj)) delete (obj as J)[k];
      Object.assign(obj, patched);
    }
    if (!deepEqual(before, obj)) this.hooks.store().revalidate(rt, obj, old);
  }
}

/** The validating webhooks, all at once; any refusal refuses the request. */
export class ValidatingWebhooks implements Admission {
  constructor(private readonly hooks: WebhookConfigurations) {}

  async admitCreate(rt: ResourceType, obj: KubeObject, opts: WriteOptions): Promise<void> {
    await this.validate(attributes(rt, 'CREATE', obj, undefined, opts), opts);
  }

  async admitUpdate(rt: ResourceType, obj: KubeObject, old: KubeObject, opts: WriteOptions): Promise<void> {
    await this.validate(attributes(rt, 'UPDATE', obj, old, opts), opts);
  }

  async admitDelete(rt: ResourceType, obj: KubeObject, opts?: WriteOptions): Promise<void> {
    await this.validate(attributes(rt, 'DELETE', undefined, obj, opts), opts);
  }

  private async validate(a: Attributes, opts: WriteOptions | undefined): Promise<void> {
    const hooks = await this.hooks.matching(this.hooks.validating, a);
    if (!hooks.length) return;
    const answers = await Promise.all(hooks.map(async ({ hook }) => ({ hook, answer: await this.hooks.call(hook, a) })));
    for (const { hook, answer } of answers) {
      if (!answer) continue;
      opts?.warnings?.push(...answer.warnings);
      if (!answer.allowed) throw denied(hook.name, answer);
    }
  }
}
