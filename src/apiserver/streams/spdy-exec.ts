import type WebSocket from 'ws';
import { channelMessage, StreamChannel, streamTypes } from '../../api/remote-command.js';
import type { SpdySession, SpdyStream } from './spdy.js';

/** How long a client has to open the streams it asked for (upstream's default, too). */
const streamCreationTimeoutMs = 30_000;

/**
 * Exec and attach for a SPDY client (v4.channel.k8s.io): waits for the streams the request
 * asked for (error always; stdin, stdout, stderr as flagged; resize with a tty), then relays
 * them to and from the kubelet's channel WebSocket, which was opened paused so no output is
 * lost meanwhile. The session ends, with every stream FIN'd, when the kubelet closes.
 */
export async function relaySpdyExec(session: SpdySession, kubelet: WebSocket, want: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): Promise<void> {
  const needed = new Set<number>([StreamChannel.error]);
  if (want.stdin) needed.add(StreamChannel.stdin);
  if (want.stdout) needed.add(StreamChannel.stdout);
  if (want.stderr && !want.tty) needed.add(StreamChannel.stderr);
  if (want.tty) needed.add(StreamChannel.resize);
  const streams = new Map<number, SpdyStream>();
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), streamCreationTimeoutMs);
    session.on('stream', (s: SpdyStream) => {
      const ch = streamTypes[s.headers.streamtype ?? ''];
      if (ch === undefined || streams.has(ch)) return s.destroy();
      streams.set(ch, s);
      s.on('error', () => {});
      if ([...needed].every((n) => streams.has(n))) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    session.once('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (!ready) {
    kubelet.close();
    session.close();
    return;
  }
  const stdin = streams.get(StreamChannel.stdin);
  stdin?.on('data', (d: Buffer) => send(kubelet, StreamChannel.stdin, d));
  stdin?.on('end', () => send(kubelet, StreamChannel.close, Buffer.from([StreamChannel.stdin])));
  let pendingResize = '';
  streams.get(StreamChannel.resize)?.on('data', (d: Buffer) => {
    // kubectl writes each size as a JSON value followed by a newline.
    pendingResize += d.toString();
    const lines = pendingResize.split('\n');
    pendingResize = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) send(kubelet, StreamChannel.resize, Buffer.from(line));
  });
  kubelet.on('message', (d: Buffer) => {
    if (!d.length) return;
    const outbound = d[0] === StreamChannel.stdout || d[0] === StreamChannel.stderr || d[0] === StreamChannel.error;
    const s = outbound ? streams.get(d[0]) : undefined;
    if (s && !s.writableEnded && !s.destroyed) s.write(d.subarray(1));
  });
  kubelet.on('close', () => {
    // Each stream's FIN follows its queued data; the session ends only once all have left.
    const ending = [StreamChannel.stdout, StreamChannel.stderr, StreamChannel.error]
      .map((ch) => streams.get(ch))
      .filter((s): s is SpdyStream => !!s && !s.writableEnded && !s.destroyed)
      .map((s) => new Promise<void>((resolve) => s.end(resolve)));
    void Promise.all(ending).then(() => session.close());
  });
  kubelet.on('error', () => kubelet.terminate());
  session.once('close', () => kubelet.close());
  kubelet.resume();
}

function send(ws: WebSocket, channel: number, d: Buffer): void {
  if (ws.readyState === ws.OPEN) ws.send(channelMessage(channel, d));
}
