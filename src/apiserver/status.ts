import { KubicleError } from '../observe/errors.js';

/**
 * The one place where our errors become Kubernetes Status objects (metav1.Status) with the
 * HTTP code, reason and details upstream would send.
 */
export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; causes?: { reason: string; message: string; field?: string }[]; retryAfterSeconds?: number };
  code: number;
}

const table: Record<KubicleError['code'], { code: number; reason: string }> = {
  NotFound: { code: 404, reason: 'NotFound' },
  AlreadyExists: { code: 409, reason: 'AlreadyExists' },
  Conflict: { code: 409, reason: 'Conflict' },
  Invalid: { code: 422, reason: 'Invalid' },
  Forbidden: { code: 403, reason: 'Forbidden' },
  Unauthorized: { code: 401, reason: 'Unauthorized' },
  Gone: { code: 410, reason: 'Expired' },
  BadRequest: { code: 400, reason: 'BadRequest' },
  MethodNotAllowed: { code: 405, reason: 'MethodNotAllowed' },
  NotAcceptable: { code: 406, reason: 'NotAcceptable' },
  UnsupportedMediaType: { code: 415, reason: 'UnsupportedMediaType' },
  TooLarge: { code: 413, reason: 'RequestEntityTooLarge' },
  Timeout: { code: 504, reason: 'Timeout' },
  TooManyRequests: { code: 429, reason: 'TooManyRequests' },
  TooNew: { code: 504, reason: 'Timeout' },
  Unsupported: { code: 405, reason: 'MethodNotAllowed' },
  Unavailable: { code: 503, reason: 'ServiceUnavailable' },
  Internal: { code: 500, reason: 'InternalError' },
};

export interface StatusContext {
  name?: string;
  group?: string;
  kind?: string;
}

export function toStatus(err: unknown, ctx: StatusContext = {}): Status {
  if (!(err instanceof KubicleError)) {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`,
      reason: 'InternalError',
      details: { causes: [{ reason: '', message: err instanceof Error ? err.message : String(err) }] },
      code: 500,
    };
  }
  const t = table[err.code];
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: err.message, reason: t.reason, code: t.code };
  const details: NonNullable<Status['details']> = {};
  const about = err.subject ?? ctx;
  if (about.name) details.name = about.name;
  if (about.group) details.group = about.group;
  if (about.kind) details.kind = about.kind;
  if (err.causes.length) details.causes = err.causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field }));
  if (err.code === 'TooNew') {
    details.causes = [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }];
    details.retryAfterSeconds = 1;
  }
  if (Object.keys(details).length) s.details = details;
  return s;
}

export function successStatus(details?: Status['details']): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details, code: 200 };
}
