import jsonpatch from 'fast-json-patch';
import { KubicleError } from '../../observe/errors.js';

/** RFC 6902 JSON patch, with failures (bad op, failed test, missing path) as BadRequest/Invalid. */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new KubicleError('BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  const err = jsonpatch.validate(ops as jsonpatch.Operation[], target);
  if (err) throw new KubicleError('Invalid', `the server rejected our request due to an error in our request: ${err.message.split('\n')[0]}`);
  try {
    return jsonpatch.applyPatch(structuredClone(target), ops as jsonpatch.Operation[], false, true).newDocument;
  } catch (e) {
    throw new KubicleError('Invalid', `the server rejected our request due to an error in our request: ${(e as Error).message.split('\n')[0]}`);
  }
}
