import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { spawn as spawnPty } from 'node-pty';
import type { StreamedProcess } from '../../runtime.js';
import { fromChild, fromPty } from '../../streamed-process.js';

/**
 * `runc exec` as a StreamedProcess that tells a command that never started (not found, not
 * executable) from one that ran and failed, as containerd does: runc writes its pid file only
 * once the process runs, so an exit without one is runc's own failure. Its message (from runc's
 * JSON log) becomes the result's message, and its copy on stderr is held back, so the caller
 * reports an error rather than a command's exit code 255. Until that is known, a started
 * command's stderr waits at most until its pid file appears (polled every few milliseconds).
 */
export interface RuncExec {
  runc: string;
  root: string;
  /** Where the pid file and log live while the exec runs (the container's run directory). */
  runDir: string;
  id: string;
  command: string[];
  stdin: boolean;
  /** With a terminal: the process file runc reads (terminal: true) and the window size. */
  tty?: { processFile: string; cols: number; rows: number };
}

const pollMs = 5;

export function runcExec(x: RuncExec): StreamedProcess {
  const tag = randomUUID();
  const pidFile = path.join(x.runDir, `exec-${tag}.pid`);
  const logFile = path.join(x.runDir, `exec-${tag}.log`);
  const global = ['--root', x.root, '--log', logFile, '--log-format', 'json', 'exec', '--pid-file', pidFile];
  let proc: StreamedProcess;
  let exited: Promise<void>;
  if (x.tty) {
    const pty = spawnPty(x.runc, [...global, '--process', x.tty.processFile, x.id], { name: 'xterm', cols: x.tty.cols, rows: x.tty.rows, encoding: null, env: process.env as Record<string, string> });
    proc = fromPty(pty);
    exited = proc.done.then(() => undefined);
  } else {
    const child = spawn(x.runc, [...global, x.id, ...x.command], { stdio: [x.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    proc = fromChild(child, { stderr: true });
    exited = new Promise((r) => child.once('exit', () => r()).once('error', () => r()));
  }
  // Whether the command ran: its pid file appeared, or (at the latest) was there when runc exited.
  const ran = new Promise<boolean>((resolve) => {
    const timer = setInterval(() => existsSync(pidFile) && done(true), pollMs);
    const done = (v: boolean) => {
      clearInterval(timer);
      resolve(v);
    };
    void exited.then(() => done(existsSync(pidFile)));
  });
  const stderr = proc.stderr?.pipe(
    new Transform({
      transform: (chunk, _e, cb) => void ran.then((yes) => cb(null, yes ? chunk : undefined)),
    }),
  );
  const done = proc.done.then(async (result) => {
    const started = await ran;
    const log = started ? '' : await readFile(logFile, 'utf8').catch(() => '');
    await Promise.all([rm(pidFile, { force: true }), rm(logFile, { force: true }), x.tty ? rm(x.tty.processFile, { force: true }) : undefined]);
    if (started || result.exitCode === 0) return result;
    return { exitCode: result.exitCode, message: `OCI runtime exec failed: ${runcError(log) ?? `runc exited with code ${result.exitCode}`}` };
  });
  return { ...proc, stderr, done };
}

/** The last error runc logged (one JSON object per line), if any. */
function runcError(log: string): string | undefined {
  let msg: string | undefined;
  for (const line of log.split('\n')) {
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' && entry.msg) msg = entry.msg;
    } catch {
      // a torn or foreign line: skip it
    }
  }
  return msg;
}
