import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { Readable, Writable } from 'node:stream';
import type { IPty } from 'node-pty';
import type { ExecResult } from './api/types.js';
import type { StreamedProcess } from './runtime.js';

/** Keeps the first bytes of a stream for an error message. */
function collect(stream: Readable | null | undefined, limit = 4096): () => string {
  let text = '';
  stream?.on('data', (d: Buffer) => {
    if (text.length < limit) text += d.toString();
  });
  return () => text.trim();
}

function codeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  // The shell's convention for a process a signal killed: 128 + the signal's number.
  return 128 + (signal ? constants.signals[signal] : 1);
}

/**
 * A child process with pipes as a StreamedProcess. `failure` turns an unsuccessful end into a
 * message (for port-forward, whose helper's complaint is the whole story); `stderr: false`
 * keeps stderr for that message instead of handing it to the caller.
 */
export function fromChild(child: ChildProcess, opts: { stderr: boolean; failure?: (code: number, stderr: string) => string | undefined }): StreamedProcess {
  const errText = opts.stderr ? () => '' : collect(child.stderr);
  const done = new Promise<ExecResult>((resolve) => {
    child.once('error', (err) => resolve({ exitCode: 255, message: err.message }));
    child.once('close', (code, signal) => {
      const exitCode = codeOf(code, signal);
      const message = exitCode === 0 ? undefined : opts.failure?.(exitCode, errText());
      resolve(message ? { exitCode, message } : { exitCode });
    });
  });
  // A client that goes away mid-write must not crash the agent with EPIPE.
  child.stdin?.on('error', () => {});
  return {
    stdin: child.stdin ?? undefined,
    stdout: child.stdout as Readable,
    stderr: opts.stderr ? (child.stderr ?? undefined) : undefined,
    resize: () => {},
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    done,
  };
}

/**
 * A process on a pseudo-terminal (node-pty) as a StreamedProcess: one output stream, paused
 * while the reader lags, and a resizable window.
 */
export function fromPty(pty: IPty): StreamedProcess {
  let exited = false;
  const stdout = new Readable({
    read: () => pty.resume(),
  });
  pty.onData((d: string | Buffer) => {
    if (!stdout.push(typeof d === 'string' ? Buffer.from(d) : d)) pty.pause();
  });
  const done = new Promise<ExecResult>((resolve) => {
    pty.onExit(({ exitCode, signal }) => {
      exited = true;
      stdout.push(null);
      resolve({ exitCode: signal ? 128 + signal : exitCode });
    });
  });
  const stdin = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!exited) pty.write(chunk);
      cb();
    },
    // A terminal has no end of input other than the user's ^D, which arrives as data.
  });
  return {
    stdin,
    stdout,
    resize: (cols, rows) => {
      if (!exited && cols > 0 && rows > 0) pty.resize(Math.min(cols, 1000), Math.min(rows, 1000));
    },
    kill: () => {
      if (!exited) pty.kill('SIGKILL');
    },
    done,
  };
}
