/**
 * The Sandbox API's streams, carried over WebSocket (RFC 6455) after an upgrade of a GET.
 *
 * Exec (`GET /v1/sandboxes/{id}/containers/{name}/exec?command=…&stdin=true&tty=true`,
 * subprotocol `execSubprotocol`): every binary message starts with a channel byte. The client
 * sends `stdin` data, `resize` ({cols, rows} as JSON) and `[close, stdin]` when its input ends;
 * the agent sends `stdout` and `stderr` data, then one `status` message (an ExecResult as
 * JSON) and a normal close. Output always arrives before the status. A terminal starts at
 * `cols`×`rows` when the request gives them; otherwise the process starts on the client's
 * first resize (or after a second at 80×24), so that it never sees another size first.
 *
 * Port-forward (`GET /v1/sandboxes/{id}/portforward?port=N`, subprotocol
 * `portForwardSubprotocol`): one WebSocket per TCP connection into the sandbox's network;
 * binary messages are the bytes, an empty message means the sender has finished writing
 * (a half-close). The agent closes with 1000 when the connection ended cleanly and with 1011
 * and the reason when it failed (nothing listening, for one).
 */
export const execSubprotocol = 'exec.v1.sandbox.kubicle.io';
export const portForwardSubprotocol = 'portforward.v1.sandbox.kubicle.io';

export const Channel = { stdin: 0, stdout: 1, stderr: 2, status: 3, resize: 4, close: 255 } as const;

/** A message on a channel. */
export function frame(channel: number, data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = channel;
  body.copy(out, 1);
  return out;
}

/** Close codes the agent ends a stream with (RFC 6455 §7.4.1). */
export const CloseCode = { normal: 1000, error: 1011 } as const;

/** WebSocket close reasons are limited to 123 bytes; longer messages are cut. */
export function closeReason(message: string): string {
  const b = Buffer.from(message);
  return b.length <= 123 ? message : `${b.subarray(0, 120).toString().replace(/\uFFFD$/, '')}...`;
}
