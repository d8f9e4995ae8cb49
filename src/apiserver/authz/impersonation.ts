import { KubicleError } from '../../observe/errors.js';
import type { UserInfo } from '../authn.js';
import { type Attributes, type Authorizer, forbiddenMessage } from './authorizer.js';

/**
 * Impersonation (`kubectl --as`, `--as-group`, `--as-uid`), as upstream: the Impersonate-* headers
 * name another user, and the caller must be allowed the `impersonate` verb on each part of it —
 * users (or the service account), groups, uids and each extra value. The request then runs as
 * that user, in system:authenticated (and a service account's own groups). No headers: the
 * caller stays as they are.
 */
const serviceAccountPrefix = 'system:serviceaccount:';

/** `headers`: each header's values kept apart (Node's `req.headersDistinct`), so a group may hold a comma. */
export function impersonate(headers: NodeJS.Dict<string[]>, caller: UserInfo, authorizer: Authorizer | undefined): UserInfo {
  const name = single(headers['impersonate-user']);
  const groups = list(headers['impersonate-group']);
  const uid = single(headers['impersonate-uid']);
  const extra: Record<string, string[]> = {};
  for (const [h, v] of Object.entries(headers)) {
    if (!h.startsWith('impersonate-extra-')) continue;
    const key = decodeURIComponent(h.slice('impersonate-extra-'.length)).toLowerCase();
    extra[key] = list(v);
  }
  if (name === undefined) {
    if (groups.length || uid !== undefined || Object.keys(extra).length) {
      throw new KubicleError('BadRequest', 'requested impersonation of groups, a uid or extra fields without impersonating a user');
    }
    return caller;
  }
  const check = (a: Omit<Attributes, 'verb' | 'path'>) => {
    const attrs: Attributes = { verb: 'impersonate', path: '', ...a };
    if (authorizer && !authorizer.authorize(caller, attrs).allowed) throw new KubicleError('Forbidden', forbiddenMessage(caller, attrs));
  };
  const out: UserInfo = { name, groups: [...groups] };
  if (name.startsWith(serviceAccountPrefix)) {
    const [ns, sa] = name.slice(serviceAccountPrefix.length).split(':');
    if (!ns || !sa) throw new KubicleError('BadRequest', `invalid service account name ${JSON.stringify(name)}`);
    check({ group: '', resource: 'serviceaccounts', namespace: ns, name: sa });
    out.groups.push('system:serviceaccounts', `system:serviceaccounts:${ns}`);
  } else check({ group: '', resource: 'users', name });
  for (const g of groups) check({ group: '', resource: 'groups', name: g });
  if (uid !== undefined) {
    check({ group: 'authentication.k8s.io', resource: 'uids', name: uid });
    out.uid = uid;
  }
  for (const [key, values] of Object.entries(extra)) for (const v of values) check({ group: 'authentication.k8s.io', resource: 'userextras', subresource: key, name: v });
  if (Object.keys(extra).length) out.extra = extra;
  if (name !== 'system:anonymous' && !out.groups.includes('system:authenticated')) out.groups.push('system:authenticated');
  out.groups = [...new Set(out.groups)];
  return out;
}

function single(v: string[] | undefined): string | undefined {
  return v?.[0];
}

function list(v: string[] | undefined): string[] {
  return (v ?? []).map((s) => s.trim()).filter(Boolean);
}
