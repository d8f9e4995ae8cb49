import type { ServerResponse } from 'node:http';

/** One named health check: resolves when healthy, rejects with why not. */
export interface HealthCheck {
  name: string;
  check(): Promise<void>;
}

/** The health endpoints, and the paths anyone may ask them at without credentials. */
export const healthPaths = ['/healthz', '/livez', '/readyz'] as const;
type Endpoint = 'healthz' | 'livez' | 'readyz';

/**
 * The API server's /livez, /readyz and (deprecated) /healthz, answered as upstream's are, since
 * probes and load balancers read them so: 200 `ok` or 500 with each check's line; `?verbose`
 * lists the checks either way, `?exclude=name` (repeatable) leaves one out, and `/readyz/<name>`
 * runs one check alone. Reasons stay in the server's hands ("reason withheld") except for a
 * single check asked by name.
 *
 * livez says whether the process should be restarted; readyz whether traffic should go to it.
 * The store check is readyz's alone: restarting an API server does not bring its store back.
 */
export class Health {
  constructor(private readonly checks: Record<Endpoint, HealthCheck[]>) {}

  /** Whether `pathname` is one of the health endpoints or one of their checks. */
  static serves(pathname: string): boolean {
    return healthPaths.some((p) => pathname === p || pathname.startsWith(`${p}/`));
  }

  async answer(pathname: string, query: URLSearchParams, res: ServerResponse): Promise<void> {
    const [endpoint, single] = pathname.slice(1).split('/') as [Endpoint, string | undefined];
    const checks = this.checks[endpoint];
    if (single !== undefined) {
      const one = checks.find((c) => c.name === single);
      if (!one) return reply(res, 404, `${single} is not a ${endpoint} check\n`);
      const failure = await run(one);
      return reply(res, failure === undefined ? 200 : 500, failure === undefined ? 'ok' : `internal server error: ${failure}\n`);
    }
    const excluded = new Set(query.getAll('exclude'));
    const results = await Promise.all(checks.filter((c) => !excluded.has(c.name)).map(async (c) => ({ name: c.name, failure: await run(c) })));
    const healthy = results.every((r) => r.failure === undefined);
    if (healthy && !query.has('verbose')) return reply(res, 200, 'ok');
    const lines = results.map((r) => (r.failure === undefined ? `[+]${r.name} ok` : `[-]${r.name} failed: reason withheld`));
    for (const name of excluded) lines.push(`[+]${name} excluded: ok`);
    lines.push(`${endpoint} check ${healthy ? 'passed' : 'failed'}`);
    reply(res, healthy ? 200 : 500, `${lines.join('\n')}\n`);
  }
}

/** The check's failure, or undefined when it passed. */
async function run(c: HealthCheck): Promise<string | undefined> {
  try {
    await c.check();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function reply(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
  res.end(body);
}

/** Rejects with "timed out after N s" if `work` takes longer than `ms`. */
export function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms / 1000} s`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
