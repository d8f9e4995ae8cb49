import { type FieldCause, KubicleError } from '../observe/errors.js';

/**
 * Collects validation failures in Kubernetes' field-error vocabulary, then turns them into one
 * Invalid error whose message reads like upstream's:
 *   Pod "x" is invalid: spec.containers[0].image: Required value
 */
export class FieldErrors {
  readonly causes: FieldCause[] = [];

  required(field: string, detail = ''): void {
    this.causes.push({ reason: 'FieldValueRequired', field, message: detail ? `Required value: ${detail}` : 'Required value' });
  }
  invalid(field: string, value: unknown, detail: string): void {
    this.causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${detail}` });
  }
  notSupported(field: string, value: unknown, supported: string[]): void {
    this.causes.push({
      reason: 'FieldValueNotSupported',
      field,
      message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${supported.map((s) => `"${s}"`).join(', ')}`,
    });
  }
  duplicate(field: string, value: unknown): void {
    this.causes.push({ reason: 'FieldValueDuplicate', field, message: `Duplicate value: ${JSON.stringify(value)}` });
  }
  forbidden(field: string, detail: string): void {
    this.causes.push({ reason: 'FieldValueForbidden', field, message: `Forbidden: ${detail}` });
  }
  tooLong(field: string, max: number): void {
    this.causes.push({ reason: 'FieldValueTooLong', field, message: `Too long: may not be more than ${max} bytes` });
  }
  immutable(field: string, value: unknown): void {
    this.causes.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: field is immutable` });
  }
  tooMany(field: string, actual: number, max: number): void {
    this.causes.push({ reason: 'FieldValueTooMany', field, message: `Too many: ${actual}: must have at most ${max} items` });
  }
  /** A failure whose wording has no helper above (schema checks phrase their own). */
  add(reason: FieldCause['reason'], field: string, message: string): void {
    this.causes.push({ reason, field, message });
  }
  get empty(): boolean {
    return this.causes.length === 0;
  }

  /** Throws Invalid if anything was collected. `qualifiedKind` is e.g. "Pod" or "Deployment.apps". */
  throwIfAny(qualifiedKind: string, name: string | undefined): void {
    if (!this.empty) throw this.toError(qualifiedKind, name);
  }

  /** The Invalid error for what was collected (call only when something was). */
  toError(qualifiedKind: string, name: string | undefined): KubicleError {
    const list = this.causes.map((c) => `${c.field}: ${c.message}`);
    const joined = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
    const dot = qualifiedKind.indexOf('.');
    const subject = dot < 0 ? { kind: qualifiedKind, name } : { kind: qualifiedKind.slice(0, dot), group: qualifiedKind.slice(dot + 1), name };
    return new KubicleError('Invalid', `${qualifiedKind} "${name ?? ''}" is invalid: ${joined}`, { causes: this.causes, subject });
  }
}
