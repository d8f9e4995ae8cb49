import https from 'node:https';

/** How long a probe waits for its answer, by default: beyond the API server's own 1 s store check. */
const probeTimeoutMs = 2000;
/** Probes in a row left unanswered before a replica counts as hung (as a liveness probe's failureThreshold). */
const hungAfter = 3;

interface State {
  agent: https.Agent;
  ready: boolean;
  unanswered: number;
}

/**
 * What the provider knows of each control-plane replica's health, from probing its /readyz over
 * its unix socket (TLS checked against the cluster's CA, no credential: the API server lets
 * anyone read its health). A replica answering 200 is ready; one answering anything else is alive
 * but not ready (its store unreachable, shutting down), so connections go elsewhere; one not
 * answering at all — its process stopped or stuck, though the kernel still accepts connections
 * on its socket, which is why connecting alone proves nothing — is neither, and after a few
 * probes in a row counts as hung, for the caller to restart it.
 *
 * Each replica is known by its socket path. A replica not probed yet counts as ready: it was
 * started and waited for until it served.
 */
export class ReplicaHealth {
  private readonly states = new Map<string, State>();

  constructor(private readonly timeoutMs = probeTimeoutMs) {}

  /** Probes the replica at `socket` once and records what it found; `caPem` is its cluster's CA. */
  async probe(socket: string, caPem: string): Promise<void> {
    let s = this.states.get(socket);
    if (!s) {
      // One kept-alive connection per replica: a TLS handshake every probe would cost both sides more than the probe.
      s = { agent: new https.Agent({ keepAlive: true, maxSockets: 1 }), ready: true, unanswered: 0 };
      this.states.set(socket, s);
    }
    const status = await readyz(socket, caPem, s.agent, this.timeoutMs);
    if (this.states.get(socket) !== s) return; // forgotten meanwhile
    s.unanswered = status === undefined ? s.unanswered + 1 : 0;
    s.ready = status === 200;
  }

  /** Whether the replica at `socket` takes connections: ready, or not probed yet. */
  ready(socket: string): boolean {
    return this.states.get(socket)?.ready ?? true;
  }

  /** Whether the replica at `socket` has left enough probes in a row unanswered to be restarted. */
  hung(socket: string): boolean {
    return (this.states.get(socket)?.unanswered ?? 0) >= hungAfter;
  }

  /** `sockets` with the ready ones first, each group in its own order: a connection tries them in turn. */
  order(sockets: string[]): string[] {
    return [...sockets.filter((s) => this.ready(s)), ...sockets.filter((s) => !this.ready(s))];
  }

  /** Drops what is known of the replicas at `sockets` (restarted, asleep, gone) and their connections. */
  forget(sockets: string[]): void {
    for (const socket of sockets) {
      this.states.get(socket)?.agent.destroy();
      this.states.delete(socket);
    }
  }
}

/** The status /readyz answers with at `socket`, or undefined when it does not answer in time. */
function readyz(socket: string, caPem: string, agent: https.Agent, timeoutMs: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    // The API server's certificate names it `kubernetes`, whichever address reaches it.
    const req = https.request({ socketPath: socket, path: '/readyz', host: 'kubernetes', servername: 'kubernetes', ca: caPem, agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', () => resolve(undefined));
    req.end();
  });
}
