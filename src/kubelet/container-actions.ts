import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Obj } from '../client/kube-client.js';
import type { SandboxClient } from '../sandbox/api/client.js';

/** Where an action runs: the pod's sandbox and address, and the container (for named ports and exec). */
export interface ActionTarget {
  sandbox: string;
  container: Obj;
  podIP?: string;
}

export interface ActionResult {
  ok: boolean;
  /** What went wrong, in upstream's words where it has some (events and probe messages). */
  message?: string;
}

/**
 * Runs one probe or lifecycle handler (core/v1 ProbeHandler or LifecycleHandler): exec in the
 * container through the agent, httpGet and tcpSocket from this host to the pod's address, sleep.
 * Success as upstream: exit code 0, HTTP 200–399, an accepted connection. Never throws.
 */
export async function runAction(agent: SandboxClient, action: Obj, target: ActionTarget, timeoutMs: number): Promise<ActionResult> {
  try {
    if (action.exec) {
      const command = (action.exec.command ?? []) as string[];
      const r = await agent.exec(target.sandbox, target.container.name, command, timeoutMs);
      if (r.output.endsWith('command timed out')) return { ok: false, message: `command ${JSON.stringify(command.join(' '))} timed out` };
      return r.exitCode === 0 ? { ok: true } : { ok: false, message: r.output.trim() || `command exited with ${r.exitCode}` };
    }
    if (action.httpGet) return await httpGet(action.httpGet, target, timeoutMs);
    if (action.tcpSocket) return await tcpConnect(action.tcpSocket, target, timeoutMs);
    if (action.sleep) {
      await new Promise((r) => setTimeout(r, Math.max(0, Number(action.sleep.seconds) || 0) * 1000));
      return { ok: true };
    }
    if (action.grpc) return { ok: false, message: 'gRPC probes are not supported by this kubelet' };
    return { ok: false, message: 'the handler has no action' };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

/** A port by number, or by the name of one of the container's ports. */
export function resolvePort(port: number | string | undefined, container: Obj): number {
  if (typeof port === 'number') return port;
  if (port !== undefined && /^\d+$/.test(port)) return Number(port);
  const named = ((container.ports ?? []) as Obj[]).find((p) => p.name === port);
  if (!named) throw new Error(`unable to find port ${JSON.stringify(port)} in container ${container.name}`);
  return named.containerPort;
}

function httpGet(h: Obj, target: ActionTarget, timeoutMs: number): Promise<ActionResult> {
  const host = h.host || target.podIP;
  if (!host) return Promise.resolve({ ok: false, message: 'the pod has no IP yet' });
  const port = resolvePort(h.port, target.container);
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/1.30', accept: '*/*' };
  for (const x of (h.httpHeaders ?? []) as { name: string; value: string }[]) headers[x.name.toLowerCase()] = x.value;
  const secure = String(h.scheme ?? 'HTTP').toUpperCase() === 'HTTPS';
  const path = (h.path as string | undefined) || '/';
  const url = `${secure ? 'https' : 'http'}://${host}:${port}${path.startsWith('/') ? path : `/${path}`}`;
  return new Promise((resolve) => {
    const req = (secure ? https : http).get(url, { headers, timeout: timeoutMs, ...(secure ? { rejectUnauthorized: false } : {}) }, (res) => {
      let body = '';
      res.on('data', (d) => {
        if (body.length < 10_240) body += d;
      });
      res.on('end', () => {
        const code = res.statusCode ?? 0;
        resolve(code >= 200 && code < 400 ? { ok: true } : { ok: false, message: `HTTP probe failed with statuscode: ${code}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`Get "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`)));
    req.on('error', (err) => resolve({ ok: false, message: err.message.startsWith('Get "') ? err.message : `Get "${url}": ${err.message}` }));
  });
}

function tcpConnect(t: Obj, target: ActionTarget, timeoutMs: number): Promise<ActionResult> {
  const host = t.host || target.podIP;
  if (!host) return Promise.resolve({ ok: false, message: 'the pod has no IP yet' });
  const port = resolvePort(t.port, target.container);
  return new Promise((resolve) => {
    const sock = net.connect({ host, port, timeout: timeoutMs });
    sock.once('connect', () => {
      sock.destroy();
      resolve({ ok: true });
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve({ ok: false, message: `dial tcp ${host}:${port}: i/o timeout` });
    });
    sock.once('error', (err) => resolve({ ok: false, message: `dial tcp ${host}:${port}: ${err.message}` }));
  });
}
