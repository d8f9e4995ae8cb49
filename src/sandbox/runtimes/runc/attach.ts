import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ExecResult } from '../../api/types.js';
import type { StreamedProcess } from '../../runtime.js';

export interface AttachTarget {
  /** The run's directory: conmon's bundle, holding its control FIFO and (with --full-attach) its attach socket. */
  runDir: string;
  /** The container's log followed from now on; it ends when the container exits. */
  output: Readable;
  /** Stops following the log. */
  stopOutput: () => void;
  /** Whether to carry the caller's input (the container must have been started with stdin). */
  stdin: boolean;
  /** The container's exit code once the log has ended. */
  exitCode: () => Promise<number>;
}

/**
 * Attaching to a container conmon monitors. Output is the container's log from now on (conmon
 * writes every byte there as it comes, partial lines and terminal output included). Input goes to
 * conmon's attach socket, which is SOCK_SEQPACKET — a socket type Node cannot open — so socat,
 * the standard tool for joining sockets, carries it; what conmon sends back on that socket is a
 * copy of the output and is drained unread. Resizes are written to conmon's window-size FIFO.
 * When the caller detaches, conmon closes the container's input unless it was started to keep it
 * open (stdinOnce: false), as Kubernetes asks.
 */
export function attachToConmon(t: AttachTarget): StreamedProcess {
  // A relative path from the socket's directory: the absolute one may exceed the 108 bytes a
  // unix socket address holds.
  const relay = t.stdin ? spawn('socat', ['-', 'UNIX-CONNECT:attach,type=5'], { cwd: t.runDir, stdio: ['pipe', 'pipe', 'pipe'] }) : undefined;
  let relayError = '';
  relay?.stdout?.resume();
  relay?.stderr?.on('data', (d: Buffer) => {
    relayError += d.toString();
  });
  relay?.stdin?.on('error', () => {});
  // The caller ending its input ends socat too, rightly; only an exit before that loses input.
  let inputEnded = false;
  relay?.stdin?.once('finish', () => {
    inputEnded = true;
  });
  let killed = false;
  let resizes = Promise.resolve();
  const done = new Promise<ExecResult>((resolve) => {
    relay?.on('error', (err) => {
      relayError ||= err.message;
    });
    t.output.once('end', () => {
      relay?.kill();
      void t.exitCode().then(
        (exitCode) => resolve({ exitCode }),
        () => resolve({ exitCode: 0 }),
      );
    });
    t.output.once('error', (err) => resolve({ exitCode: 1, message: err.message }));
    relay?.once('exit', (code, signal) => {
      // The input relay ending while the caller still types means its input goes nowhere: say so
      // and end the session, rather than leave a terminal that silently ignores the keyboard.
      // conmon closing the socket because the container exited ends it too, a little before the
      // log ends: give the output that long to end first.
      if (killed || inputEnded) return;
      setTimeout(() => {
        if (killed || t.output.readableEnded) return;
        t.stopOutput();
        const how = signal ? `signal ${signal}` : `code ${code}`;
        resolve({ exitCode: 1, message: `attaching input failed: the input relay exited (${how})${relayError.trim() ? `: ${relayError.trim()}` : ''}` });
      }, 2000).unref();
    });
  });
  return {
    stdin: relay?.stdin ?? undefined,
    stdout: t.output,
    resize(cols, rows) {
      if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1) return;
      // In order: kubectl sends a size one larger and then the real one to make programs redraw,
      // and the last one written must be the last one applied.
      resizes = resizes
        .then(async () => {
          const fifo = await open(path.join(t.runDir, 'winsz'), 'r+');
          await fifo.write(windowSizeMessage(rows, cols)).finally(() => fifo.close());
        })
        .catch(() => {});
    },
    kill() {
      if (killed) return;
      killed = true;
      relay?.kill();
      t.stopOutput();
    },
    done,
  };
}

/**
 * conmon up to 2.1.x (Debian 12 ships 2.1.6) reads its control FIFOs 199 bytes at a time and,
 * for every whole line one read holds, handles the first line again (fixed upstream in 2025):
 * two sizes read together apply the first twice and drop the second, leaving kubectl's "one
 * larger" size on the terminal. So each message is padded to exactly one read; sscanf ignores the
 * padding. It goes to the window-size FIFO itself: a resize sent through the control FIFO is
 * passed on to that one as a short line, where the same bug would meet it.
 */
const conmonReadSize = 199;

/** conmon's window-size message, "<rows> <cols>\n", padded to one read of conmon's. */
function windowSizeMessage(rows: number, cols: number): string {
  const line = `${rows} ${cols}`;
  return `${line.padEnd(conmonReadSize - 1)}\n`;
}
