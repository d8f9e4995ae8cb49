import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { KubeObject } from '../../api/object.js';
import type { ResourceType } from '../../api/resource-type.js';
import { KubicleError } from '../../observe/errors.js';
import type { UserInfo } from '../authn.js';

/**
 * One call of an admission webhook: an AdmissionReview (admission.k8s.io/v1) POSTed over HTTPS,
 * the server verified against the webhook's caBundle, within its timeoutSeconds. Failures to
 * reach or understand the webhook are thrown as CallFailed so the caller can apply the
 * failurePolicy; an answer is returned as it came.
 */
export type Operation = 'CREATE' | 'UPDATE' | 'DELETE';

export interface Attributes {
  rt: ResourceType;
  operation: Operation;
  name: string;
  namespace?: string;
  object?: KubeObject;
  oldObject?: KubeObject;
  user?: UserInfo;
  dryRun: boolean;
}

export interface WebhookAnswer {
  allowed: boolean;
  status?: { code?: number; message?: string; reason?: string };
  /** The JSON patch operations of a mutating webhook, decoded. */
  patch?: unknown[];
  warnings: string[];
}

export class CallFailed extends Error {}

/** Where to send the review: the configured URL, or a Service's endpoint the caller resolved. */
export interface Target {
  url: URL;
  /** The name the server's certificate must carry (a Service's DNS name when connecting by address). */
  servername?: string;
  caPem?: string;
  timeoutMs: number;
}

/** Answers bigger than this are refused, so a hostile webhook cannot exhaust the server's memory. */
const maxAnswerBytes = 3 * 1024 * 1024;

export function review(a: Attributes): { uid: string; body: Record<string, unknown> } {
  const uid = randomUUID();
  const gvk = { group: a.rt.group, version: a.rt.version, kind: a.rt.kind };
  const gvr = { group: a.rt.group, version: a.rt.version, resource: a.rt.plural };
  const optionsKind = a.operation === 'CREATE' ? 'CreateOptions' : a.operation === 'UPDATE' ? 'UpdateOptions' : 'DeleteOptions';
  return {
    uid,
    body: {
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid,
        kind: gvk,
        resource: gvr,
        requestKind: gvk,
        requestResource: gvr,
        name: a.name,
        ...(a.namespace ? { namespace: a.namespace } : {}),
        operation: a.operation,
        userInfo: a.user ? { username: a.user.name, ...(a.user.uid ? { uid: a.user.uid } : {}), groups: a.user.groups, ...(a.user.extra ? { extra: a.user.extra } : {}) } : { username: 'system:apiserver', groups: ['system:masters'] },
        object: a.object ?? null,
        oldObject: a.oldObject ?? null,
        dryRun: a.dryRun,
        options: { apiVersion: 'meta.k8s.io/v1', kind: optionsKind, ...(a.dryRun ? { dryRun: ['All'] } : {}) },
      },
    },
  };
}

export async function callWebhook(target: Target, a: Attributes): Promise<WebhookAnswer> {
  const { uid, body } = review(a);
  const payload = JSON.stringify(body);
  const text = await new Promise<string>((resolve, reject) => {
    const req = https.request(
      target.url,
      {
        method: 'POST',
        ca: target.caPem,
        servername: target.servername,
        timeout: target.timeoutMs,
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'Content-Length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxAnswerBytes) req.destroy(new CallFailed(`the response is larger than ${maxAnswerBytes} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 300) reject(new CallFailed(`the server responded with HTTP ${res.statusCode}`));
          else resolve(Buffer.concat(chunks).toString('utf8'));
        });
        res.on('error', reject);
      },
    );
    // The deadline covers the whole exchange, not only idle time on the socket.
    const deadline = setTimeout(() => req.destroy(new CallFailed('context deadline exceeded')), target.timeoutMs);
    req.on('close', () => clearTimeout(deadline));
    req.on('timeout', () => req.destroy(new CallFailed('context deadline exceeded')));
    req.on('error', reject);
    req.end(payload);
  }).catch((err: Error) => {
    throw new CallFailed(`failed to call webhook: Post "${target.url.href}": ${err.message}`);
  });
  let parsed: { response?: Record<string, unknown>; apiVersion?: string; kind?: string };
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CallFailed('received invalid webhook response: the response is not JSON');
  }
  const r = parsed?.response;
  if (!r || typeof r !== 'object') throw new CallFailed('received invalid webhook response: expected response in AdmissionReview');
  if (r.uid !== uid) throw new CallFailed(`expected response.uid="${uid}", got "${String(r.uid)}"`);
  if (typeof r.allowed !== 'boolean') throw new CallFailed('received invalid webhook response: expected response.allowed to be set');
  const answer: WebhookAnswer = { allowed: r.allowed, warnings: Array.isArray(r.warnings) ? r.warnings.map(String).slice(0, 100) : [] };
  if (r.status && typeof r.status === 'object') answer.status = r.status as WebhookAnswer['status'];
  if (r.patch !== undefined) {
    if (r.patchType !== 'JSONPatch') throw new CallFailed(`unsupported patch type "${String(r.patchType)}"`);
    try {
      const ops = JSON.parse(Buffer.from(String(r.patch), 'base64').toString('utf8'));
      if (!Array.isArray(ops)) throw new Error('not a list');
      answer.patch = ops;
    } catch {
      throw new CallFailed('received invalid webhook response: the patch is not a base64-encoded JSON patch');
    }
  }
  return answer;
}

/** Upstream's error for a webhook that said no. */
export function denied(webhook: string, answer: WebhookAnswer): KubicleError {
  const by = `admission webhook "${webhook}" denied the request`;
  const s = answer.status ?? {};
  const message = s.message ? `${by}: ${s.message}` : s.reason ? `${by}: ${s.reason}` : `${by} without explanation`;
  const code = s.code ?? 403;
  const byCode: Record<number, ConstructorParameters<typeof KubicleError>[0]> = { 400: 'BadRequest', 404: 'NotFound', 409: 'Conflict', 422: 'Invalid', 429: 'TooManyRequests' };
  return new KubicleError(byCode[code] ?? 'Forbidden', message);
}

/** Upstream's error for a webhook that could not be called, under failurePolicy Fail. */
export function callFailed(webhook: string, err: unknown): KubicleError {
  return new KubicleError('Internal', `Internal error occurred: failed calling webhook "${webhook}": ${err instanceof Error ? err.message : String(err)}`);
}
