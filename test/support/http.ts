import http from 'node:http';
import https from 'node:https';
import type { Kubicle } from './kubicle.js';

/** Raw HTTPS calls with the admin certificate, for tests that check codes, headers and bodies. */
export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: response JSON is untyped
  json: any;
}

export async function rawClient(k: Kubicle) {
  const { ca, cert, key } = await k.creds();
  const agent = new https.Agent({ ca, cert, key, keepAlive: true });
  const call = (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<RawResponse> =>
    new Promise((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: k.port, method, path, agent, headers: {
            Accept: 'application/json',
            ...(body !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
          });
        },
      );
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  /** Opens a watch and collects its events until stop(). */
  const watch = (path: string) => {
    // biome-ignore lint/suspicious/noExplicitAny: watch events are untyped JSON
    const events: any[] = [];
    let req: ReturnType<typeof https.request> | undefined;
    let status = 0;
    const opened = new Promise<void>((resolve, reject) => {
      req = https.request({ host: '127.0.0.1', port: k.port, method: 'GET', path, agent: new https.Agent({ ca, cert, key }) }, (res) => {
        status = res.statusCode ?? 0;
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.trim()) events.push(JSON.parse(line));
          }
        });
        res.on('error', () => {});
        resolve();
      });
      req.on('error', (e) => (req?.destroyed ? resolve() : reject(e)));
      req.end();
    });
    return {
      events,
      opened,
      get status() {
        return status;
      },
      async until(pred: () => boolean, ms = 10_000) {
        const deadline = Date.now() + ms;
        while (!pred()) {
          if (Date.now() > deadline) throw new Error(`timed out; events: ${JSON.stringify(events.map((e) => [e.type, e.object?.metadata?.name]))}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      },
      stop: () => req?.destroy(),
    };
  };
  return { call, watch, close: () => agent.destroy() };
}

export const cm = (name: string, ns = 'default', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns, ...((extra.metadata as object) ?? {}) }, data: { k: 'v' }, ...extra, ...(extra.metadata ? { metadata: { name, namespace: ns, ...(extra.metadata as object) } } : {}) });

/** A plain HTTP GET (pods, forwarded ports) with a 3-second timeout. */
export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}
