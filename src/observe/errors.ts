/**
 * The project's error kinds. Every layer throws KubicleError with a stable code; each edge
 * translates once: a driver's native error into one of these (storage backends), and one of
 * these into a Kubernetes Status (apiserver/status.ts).
 */
export type ErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Invalid'
  | 'Forbidden'
  | 'Unauthorized'
  | 'Gone'
  | 'BadRequest'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'UnsupportedMediaType'
  | 'TooLarge'
  | 'Timeout'
  | 'TooManyRequests'
  | 'TooNew'
  | 'Unsupported'
  | 'Unavailable'
  | 'Internal';

/** One offending field of an Invalid error, in Kubernetes' StatusCause vocabulary. */
export interface FieldCause {
  /** FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueDuplicate, FieldValueForbidden, FieldValueTooLong … */
  reason: string;
  field: string;
  message: string;
}

/** The object an error is about, when the error knows better than the request (a create's name is in its body). */
export interface ErrorSubject {
  name?: string;
  group?: string;
  kind?: string;
}

export class KubicleError extends Error {
  readonly code: ErrorCode;
  readonly causes: FieldCause[];
  readonly subject?: ErrorSubject;
  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; causes?: FieldCause[]; subject?: ErrorSubject } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'KubicleError';
    this.code = code;
    this.causes = opts.causes ?? [];
    this.subject = opts.subject;
  }
}

export function isCode(err: unknown, code: ErrorCode): err is KubicleError {
  return err instanceof KubicleError && err.code === code;
}
