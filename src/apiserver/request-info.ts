import { KubicleError } from '../observe/errors.js';

/**
 * What a resource URL asks for, parsed like upstream's RequestInfoFactory:
 *   /api/v1[/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]
 *   /apis/{group}/{version}[/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]
 * "namespaces/{name}/status|finalize" are subresources of a Namespace, not a namespace scope.
 */
export interface ResourceRequest {
  group: string;
  version: string;
  namespace?: string;
  resource: string;
  name?: string;
  subresource?: string;
}

const namespaceSubresources = new Set(['status', 'finalize']);

export function parseResourcePath(pathname: string): ResourceRequest | undefined {
  const parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let group = '';
  let version: string;
  let rest: string[];
  if (parts[0] === 'api' && parts.length >= 3) {
    version = parts[1];
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 4) {
    group = parts[1];
    version = parts[2];
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && !namespaceSubresources.has(rest[2])) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length > 3) throw new KubicleError('NotFound', 'the server could not find the requested resource');
  return { group, version, namespace, resource: rest[0], name: rest[1], subresource: rest[2] };
}
