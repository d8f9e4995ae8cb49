import type { UserInfo } from '../authn.js';
import type { ResourceRequest } from '../request-info.js';

/**
 * Authorization, after authentication and before anything is read or written: one decision per
 * request from its attributes, as upstream's authorizer chain. Implementations are pure and fast
 * (no I/O on the request path); a denial becomes 403 with upstream's Forbidden wording.
 */
export interface Attributes {
  /** get, list, watch, create, update, patch, delete, deletecollection; for paths: get, post, … */
  verb: string;
  /** Absent for non-resource requests (discovery, /version, /healthz). */
  resource?: string;
  subresource?: string;
  group?: string;
  /** For namespaced requests, and for a Namespace itself (its name), as upstream. */
  namespace?: string;
  name?: string;
  path: string;
}

export interface Decision {
  allowed: boolean;
  /** Said after the Forbidden message when denied. */
  reason?: string;
}

export interface Authorizer {
  authorize(user: UserInfo, attrs: Attributes): Decision;
}

export function attributesOf(method: string, url: URL, r: ResourceRequest | undefined): Attributes {
  const path = url.pathname;
  if (!r) return { verb: method.toLowerCase(), path };
  const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
  const verb =
    method === 'GET' || method === 'HEAD'
      ? watch
        ? 'watch'
        : r.name
          ? 'get'
          : 'list'
      : method === 'POST'
        ? 'create'
        : method === 'PUT'
          ? 'update'
          : method === 'PATCH'
            ? 'patch'
            : method === 'DELETE'
              ? r.name
                ? 'delete'
                : 'deletecollection'
              : method.toLowerCase();
  const namespace = r.namespace ?? (r.group === '' && r.resource === 'namespaces' ? r.name : undefined);
  return { verb, resource: r.resource, subresource: r.subresource, group: r.group, namespace, name: r.name, path };
}

/** Upstream's wording: `clusters.kubicle.io "a" is forbidden: User "bob" cannot get resource "clusters" in API group "kubicle.io" in the namespace "t"`. */
export function forbiddenMessage(user: UserInfo, a: Attributes, reason?: string): string {
  const tail = reason ? `: ${reason}` : '';
  if (!a.resource) return `forbidden: User "${user.name}" cannot ${a.verb} path "${a.path}"${tail}`;
  const qualified = a.group ? `${a.resource}.${a.group}` : a.resource;
  const subject = a.name ? `${qualified} "${a.name}" is forbidden` : `${qualified} is forbidden`;
  const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  return `${subject}: User "${user.name}" cannot ${a.verb} resource "${resource}" in API group "${a.group ?? ''}" ${scope}${tail}`;
}
