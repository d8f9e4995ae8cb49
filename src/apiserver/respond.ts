import type { ServerResponse } from 'node:http';
import { type Status, type StatusContext, toStatus } from './status.js';

/** Writing responses: JSON bodies and Status errors, with the headers upstream sends. */
export function sendJson(res: ServerResponse, code: number, body: unknown, contentType = 'application/json', warnings: string[] = []): void {
  const data = JSON.stringify(body);
  const headers: Record<string, string | string[]> = {
    'Content-Type': contentType,
    'Content-Length': String(Buffer.byteLength(data)),
    'Cache-Control': 'no-cache, private',
  };
  if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(data);
}

export function sendError(res: ServerResponse, err: unknown, ctx?: StatusContext): Status {
  const status = toStatus(err, ctx);
  if (!res.headersSent) sendJson(res, status.code, status);
  else res.end();
  return status;
}
