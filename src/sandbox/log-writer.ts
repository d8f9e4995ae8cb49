import { closeSync, openSync, writeSync } from 'node:fs';

/**
 * Writes a container's output in the Kubernetes log-file format that log-reader.ts reads and
 * conmon writes for runc (`<RFC 3339 time> <stdout|stderr> <P|F> <text>`): each whole line as F,
 * and what is left of a line at the end of a chunk as P, so nothing waits for a newline.
 * Writes are synchronous, as conmon's are: output the host has taken from a guest is in the file
 * (the page cache) before anything else happens, so a host agent killed with -9 loses none of it.
 */
export class LogWriter {
  private fd?: number;

  constructor(file: string) {
    this.fd = openSync(file, 'a');
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.fd === undefined) return;
    const time = new Date().toISOString().replace('Z', '000000Z');
    const text = chunk.toString();
    const parts = text.split('\n');
    const tail = parts.pop() ?? '';
    let lines = '';
    for (const p of parts) lines += `${time} ${stream} F ${p.replace(/\r$/, '')}\n`;
    if (tail) lines += `${time} ${stream} P ${tail}\n`;
    try {
      writeSync(this.fd, lines);
    } catch {
      // A full disk loses output, as a full pipe would stall it: the container goes on.
    }
  }

  /** Closes the file; everything written is in it. */
  async close(): Promise<void> {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
