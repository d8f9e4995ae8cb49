import type { Obj } from '../client/kube-client.js';

/** The controller name IngressClasses use to hand their Ingresses to this platform. */
export const INGRESS_CONTROLLER = 'kubicle.io/ingress-controller';
const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';
const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';

/** Where a request goes: a Service port in the Ingress's namespace. */
export interface Backend {
  namespace: string;
  service: string;
  port: { number?: number; name?: string };
  /** The Ingress that defined it, for logs. */
  ingress: string;
}

interface PathRule {
  path: string;
  exact: boolean;
  backend: Backend;
}

/** A Warning to record on an Ingress: what of it is not served and why. */
export interface IngressProblem {
  ingress: Obj;
  reason: string;
  message: string;
}

/**
 * The routing table of all Ingresses this controller serves, merged as the Ingress specification
 * reads: hosts matched exactly, then by wildcard (`*.example.com` covers one label), then rules
 * without a host; within a host the longest matching path wins, an Exact path over a Prefix of the
 * same length; Prefix matches whole path elements. When two Ingresses define the same host, path
 * and type, or both a default backend, or different certificates for one host, the older keeps it
 * and the newer gets a problem.
 */
export class IngressRoutes {
  private readonly hosts = new Map<string, PathRule[]>();
  private readonly tls = new Map<string, { namespace: string; secret: string }>();
  defaultBackend?: Backend;
  readonly problems: IngressProblem[] = [];
  /** The Ingresses of this controller's classes, oldest first: their status shows its address. */
  readonly served: Obj[] = [];

  constructor(ingresses: Obj[], classes: Obj[]) {
    const ours = new Set(classes.filter((c) => c.spec?.controller === INGRESS_CONTROLLER).map((c) => c.metadata.name as string));
    const defaultOurs = classes.some((c) => ours.has(c.metadata.name) && c.metadata.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true');
    const byAge = [...ingresses].sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)) || id(a).localeCompare(id(b)));
    const owner = new Map<string, string>();
    for (const ing of byAge) {
      const cls = ing.spec?.ingressClassName ?? ing.metadata.annotations?.[LEGACY_CLASS_ANNOTATION];
      if (cls ? !ours.has(cls) : !defaultOurs) continue;
      this.served.push(ing);
      const ns = ing.metadata.namespace as string;
      const backendOf = (b: Obj | undefined): Backend | undefined =>
        b?.service?.name ? { namespace: ns, service: b.service.name, port: { number: b.service.port?.number, name: b.service.port?.name }, ingress: id(ing) } : undefined;
      const claim = (what: string, label: string) => {
        const holder = owner.get(what);
        if (holder && holder !== id(ing)) {
          this.problems.push({ ingress: ing, reason: 'Conflict', message: `${label} is already defined by Ingress ${holder}; this one is ignored` });
          return false;
        }
        owner.set(what, id(ing));
        return true;
      };
      if (ing.spec?.defaultBackend) {
        const b = backendOf(ing.spec.defaultBackend);
        if (!b) this.problems.push({ ingress: ing, reason: 'Unsupported', message: 'spec.defaultBackend: only Service backends are supported' });
        else if (claim('default', 'the default backend')) this.defaultBackend = b;
      }
      for (const rule of (ing.spec?.rules ?? []) as Obj[]) {
        const host = String(rule.host ?? '').toLowerCase();
        for (const p of (rule.http?.paths ?? []) as Obj[]) {
          const b = backendOf(p.backend);
          const exact = p.pathType === 'Exact';
          const path = p.path ?? '/';
          if (!b) {
            this.problems.push({ ingress: ing, reason: 'Unsupported', message: `host ${host || '*'} path ${path}: only Service backends are supported` });
            continue;
          }
          if (!claim(`rule ${host} ${exact} ${path}`, `host ${host || '*'} path ${path} (${exact ? 'Exact' : 'Prefix'})`)) continue;
          this.hosts.set(host, [...(this.hosts.get(host) ?? []), { path, exact, backend: b }]);
        }
      }
      for (const t of (ing.spec?.tls ?? []) as Obj[]) {
        if (!t.secretName) continue;
        for (const h of (t.hosts ?? []) as string[]) {
          const host = h.toLowerCase();
          const prev = this.tls.get(host);
          if (prev && (prev.namespace !== ns || prev.secret !== t.secretName)) {
            this.problems.push({ ingress: ing, reason: 'Conflict', message: `TLS for host ${host} already comes from Secret ${prev.namespace}/${prev.secret}; ${t.secretName} is ignored` });
          } else this.tls.set(host, { namespace: ns, secret: t.secretName });
        }
      }
    }
    for (const rules of this.hosts.values()) rules.sort((a, b) => b.path.length - a.path.length || Number(b.exact) - Number(a.exact));
  }

  /** The backend for a request, or undefined (404) when nothing matches and there is no default backend. */
  route(hostHeader: string | undefined, url: string): Backend | undefined {
    const host = hostOnly(hostHeader);
    const path = decodePath(url);
    // The most specific host with rules decides alone (as a virtual server would): a path it does
    // not route falls to the default backend, not to a less specific host's rules.
    const rules = [host, wildcardOf(host), ''].map((h) => (h === undefined ? undefined : this.hosts.get(h))).find((r) => r !== undefined);
    return rules?.find((r) => (r.exact ? r.path === path : prefixMatches(r.path, path)))?.backend ?? this.defaultBackend;
  }

  /** The TLS Secret for a server name (exact host first, then wildcard). */
  certificateFor(serverName: string): { namespace: string; secret: string } | undefined {
    const host = serverName.toLowerCase();
    return this.tls.get(host) ?? this.tls.get(wildcardOf(host) ?? '');
  }

  /** Hosts with TLS get plain HTTP redirected to HTTPS. */
  hasTls(hostHeader: string | undefined): boolean {
    return this.certificateFor(hostOnly(hostHeader)) !== undefined;
  }

  /** Every TLS Secret referenced, for loading. */
  secrets(): { namespace: string; secret: string }[] {
    return [...this.tls.values()];
  }
}

const id = (o: Obj) => `${o.metadata.namespace}/${o.metadata.name}`;

function hostOnly(h: string | undefined): string {
  const s = (h ?? '').toLowerCase();
  return s.startsWith('[') ? s.slice(0, s.indexOf(']') + 1) : s.replace(/:\d+$/, '');
}

/** `*.example.com` for `a.example.com`: wildcards cover exactly one label. */
function wildcardOf(host: string): string | undefined {
  const dot = host.indexOf('.');
  return dot > 0 ? `*${host.slice(dot)}` : undefined;
}

function decodePath(url: string): string {
  const raw = url.split('?')[0] || '/';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** Prefix by path elements: /foo matches /foo, /foo/ and /foo/bar, not /foobar; a trailing slash is ignored. */
function prefixMatches(prefix: string, path: string): boolean {
  const want = prefix.split('/').filter(Boolean);
  const got = path.split('/').filter(Boolean);
  return want.length <= got.length && want.every((seg, i) => seg === got[i]);
}
