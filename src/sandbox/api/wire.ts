import http from 'node:http';
import { type ErrorCode, KubicleError } from '../../observe/errors.js';

/**
 * The Sandbox API's wire conventions, for its servers (the host agent's, and the provider's
 * per-cluster gateway in front of it): JSON bodies of bounded size, and errors as
 * `{code, message}` with the status that matches the code (client.ts reads them back).
 */
export const statusOf: Partial<Record<ErrorCode, number>> = {
  NotFound: 404,
  AlreadyExists: 409,
  Conflict: 409,
  Invalid: 422,
  BadRequest: 400,
  Forbidden: 403,
  Unauthorized: 401,
  TooLarge: 413,
  Unsupported: 415,
  Unavailable: 503,
  Timeout: 504,
  TooManyRequests: 429,
};

const maxBody = 8 << 20;

export function send(res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

/** Answers with an error: a KubicleError's code and message, anything else as Internal. */
export function sendError(res: http.ServerResponse, err: unknown): KubicleError {
  const e = err instanceof KubicleError ? err : new KubicleError('Internal', (err as Error).message);
  if (!res.headersSent) send(res, statusOf[e.code] ?? 500, { code: e.code, message: e.message });
  else res.destroy();
  return e;
}

/** The request's JSON body ({} when empty); TooLarge beyond 8 MiB, BadRequest when not JSON. */
export async function readJson(req: http.IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > maxBody) throw new KubicleError('TooLarge', `request body larger than ${maxBody} bytes`);
    chunks.push(c as Buffer);
  }
  if (!size) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new KubicleError('BadRequest', `request body is not JSON: ${(err as Error).message}`);
  }
}

/** Refuses a stream (an upgrade request) with an error response, as JSON like any other. */
export function refuseUpgrade(socket: { end(data: string): void }, err: unknown): KubicleError {
  const e = err instanceof KubicleError ? err : new KubicleError('Internal', (err as Error).message);
  const body = JSON.stringify({ code: e.code, message: e.message });
  const status = statusOf[e.code] ?? 500;
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  return e;
}

/**
 * `k=v,k2=v2` (equality only, as a kubelet lists its own) into the labels a sandbox must carry;
 * undefined when absent. Invalid for any other form, rather than listing more than was asked.
 */
export function parseLabelSelector(text: string | null): Record<string, string> | undefined {
  if (text === null || text === '') return undefined;
  const labels: Record<string, string> = {};
  for (const term of text.split(',')) {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]*)==?([-A-Za-z0-9_.]*)$/.exec(term.trim());
    if (!m) throw new KubicleError('Invalid', `labelSelector term ${JSON.stringify(term)} is not key=value`);
    labels[m[1]] = m[2];
  }
  return labels;
}

/** The labelSelector query value for `labels` (the form parseLabelSelector reads). */
export function formatLabelSelector(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
