/**
 * Kubernetes' streaming protocols for exec, attach and port-forward, as kubectl and the kubelet
 * speak them (k8s.io/apimachinery remotecommand and portforward): the negotiated names, the
 * channel numbers and the Status an exec ends with.
 */
export const ExecProtocol = {
  /** Adds the close signal (channel 255) to v4; kubectl 1.30+ over WebSocket. */
  v5: 'v5.channel.k8s.io',
  /** A metav1.Status on the error channel, resize on channel 4; kubectl over SPDY. */
  v4: 'v4.channel.k8s.io',
} as const;

export const PortForwardProtocol = {
  /** SPDY streams, one error and one data stream per connection. */
  spdy: 'portforward.k8s.io',
  /** The same SPDY session carried in WebSocket binary messages (kubectl 1.31+). */
  tunnel: 'SPDY/3.1+portforward.k8s.io',
} as const;

/** Channel bytes of the v4/v5 WebSocket framing, and SPDY stream types by the same numbers. */
export const StreamChannel = { stdin: 0, stdout: 1, stderr: 2, error: 3, resize: 4, close: 255 } as const;

/** SPDY `streamtype` header values by channel: every channel but the close signal. */
export const streamTypes: Record<string, number> = Object.fromEntries(Object.entries(StreamChannel).filter(([name]) => name !== 'close'));

/** One v4/v5 WebSocket message: the channel byte, then the data. */
export function channelMessage(channel: number, data: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from([channel]), typeof data === 'string' ? Buffer.from(data) : data]);
}

/** The terminal size kubectl sends on the resize channel. */
export interface TerminalSize {
  Width: number;
  Height: number;
}

/**
 * The Status an exec or attach ends with: Success, NonZeroExitCode with the code as a cause
 * (kubectl exits with it), or an InternalError when the runtime could not run the command.
 */
export function exitStatus(exitCode: number, command: string[], message?: string): Record<string, unknown> {
  if (message) return { metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 };
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}
