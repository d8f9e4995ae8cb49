import type { IncomingMessage } from 'node:http';
import { KubicleError } from '../observe/errors.js';

/**
 * Accept-header negotiation: JSON objects, or meta.k8s.io Tables (what kubectl get asks for).
 * Protobuf is not served; a client that accepts only protobuf gets 406.
 */
export type Rendering = { as: 'object' } | { as: 'table'; version: 'v1' | 'v1beta1' };

export function negotiate(req: IncomingMessage): Rendering {
  const accept = String(req.headers.accept ?? '*/*');
  let anyJson = false;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    const p = Object.fromEntries(params.map((x) => x.split('=').map((s) => s.trim())));
    if (type === 'application/json' || type === '*/*' || type === 'application/*') {
      if (p.as === 'Table' && p.g === 'meta.k8s.io' && (p.v === 'v1' || p.v === 'v1beta1')) return { as: 'table', version: p.v };
      if (!p.as) anyJson = true;
    }
    if (type === 'application/yaml') anyJson = true;
  }
  if (!anyJson) throw new KubicleError('NotAcceptable', `only the following media types are accepted: application/json, application/yaml`);
  return { as: 'object' };
}
