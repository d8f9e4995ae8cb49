import type { WebSocket } from 'ws';
import type { SpdySession, SpdyStream } from './spdy.js';

/** Opens the kubelet's side of one forwarded connection; rejects with the reason it cannot. */
export type DialPort = (port: number) => Promise<WebSocket>;

/**
 * Port-forward for a SPDY client (portforward.k8s.io, directly or tunnelled in a WebSocket):
 * every local connection kubectl accepts arrives as an error stream and a data stream sharing a
 * `requestid`; once both are there the connection is dialled through the kubelet and bytes flow
 * both ways, half-closes included. A failure is written to the error stream as upstream words it.
 */
export function servePortForward(session: SpdySession, dial: DialPort, describe: string): void {
  const pairs = new Map<string, { error?: SpdyStream; data?: SpdyStream }>();
  session.on('stream', (s: SpdyStream) => {
    s.on('error', () => {});
    const type = s.headers.streamtype;
    const port = Number(s.headers.port);
    const key = s.headers.requestid ?? s.headers.port ?? '';
    if ((type !== 'error' && type !== 'data') || !Number.isInteger(port) || port < 1 || port > 65535) {
      if (type === 'error') s.end(`invalid port ${JSON.stringify(s.headers.port)}`);
      else s.destroy();
      return;
    }
    const pair = pairs.get(key) ?? {};
    pair[type] = s;
    pairs.set(key, pair);
    if (pair.error && pair.data) {
      pairs.delete(key);
      void forward(pair.error, pair.data, port, dial, describe);
    }
  });
}

async function forward(errorStream: SpdyStream, data: SpdyStream, port: number, dial: DialPort, describe: string): Promise<void> {
  const fail = (reason: string) => {
    if (!errorStream.writableEnded && !errorStream.destroyed) errorStream.end(`error forwarding port ${port} to pod ${describe}: ${reason}`);
    if (!data.writableEnded && !data.destroyed) data.end();
  };
  data.pause();
  let ws: WebSocket;
  try {
    ws = await dial(port);
  } catch (err) {
    return fail((err as Error).message);
  }
  data.on('data', (d: Buffer) => ws.send(d));
  data.on('end', () => ws.readyState === ws.OPEN && ws.send(Buffer.alloc(0)));
  data.on('close', () => ws.close());
  errorStream.on('close', () => ws.close());
  ws.on('message', (d: Buffer) => {
    if (data.writableEnded || data.destroyed) return;
    if (d.length) data.write(d);
    else data.end();
  });
  ws.on('close', (code, reason) => {
    if (code === 1011) return fail(reason.toString() || 'the connection failed');
    if (!data.writableEnded && !data.destroyed) data.end();
    if (!errorStream.writableEnded && !errorStream.destroyed) errorStream.end();
  });
  ws.on('error', () => ws.terminate());
  data.resume();
  ws.resume();
}
