import { closeSync, openSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';

const NL = 0x0a;

/**
 * Writes a container's output in the Kubernetes log-file format that log-reader.ts reads and
 * conmon writes for runc (`<RFC 3339 time> <stdout|stderr> <P|F> <text>`): each whole line as F,
 * and what is left of a line at the end of a chunk as P, so nothing waits for a newline.
 * The text is the output's bytes as they came, so the file says exactly how many bytes of each
 * stream it holds (measure()): a host agent that restarts asks a guest for the rest from there.
 * Writes are synchronous, as conmon's are: output the host has taken from a guest is in the file
 * (the page cache) before anything else happens, so a host agent killed with -9 loses none of it.
 */
export class LogWriter {
  private fd?: number;

  constructor(file: string) {
    this.fd = openSync(file, 'a');
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.fd === undefined || chunk.length === 0) return;
    const time = new Date().toISOString().replace('Z', '000000Z');
    const parts: Buffer[] = [];
    for (let at = 0; at < chunk.length; ) {
      const nl = chunk.indexOf(NL, at);
      const end = nl < 0 ? chunk.length : nl;
      parts.push(Buffer.from(`${time} ${stream} ${nl < 0 ? 'P' : 'F'} `), chunk.subarray(at, end), Buffer.of(NL));
      at = end + 1;
    }
    try {
      // One write: a process killed mid-way leaves whole lines, which measure() relies on.
      writeSync(this.fd, Buffer.concat(parts));
    } catch {
      // A full disk loses output, as a full pipe would stall it: the container goes on.
    }
  }

  /** Closes the file; everything written is in it. */
  async close(): Promise<void> {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * How many bytes of stdout and of stderr a log this class wrote holds (0 and 0 when there is no
   * file): each line's text, and its newline when it is whole (F). Reads the whole file.
   */
  static async measure(file: string): Promise<{ stdout: number; stderr: number }> {
    const counts = { stdout: 0, stderr: 0 };
    const fh = await open(file, 'r').catch(() => undefined);
    if (!fh) return counts;
    try {
      let rest = Buffer.alloc(0);
      const buf = Buffer.alloc(1 << 20);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        const data = rest.length ? Buffer.concat([rest, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
        let at = 0;
        for (let nl = data.indexOf(NL); nl >= 0; nl = data.indexOf(NL, at)) {
          countLine(data.subarray(at, nl), counts);
          at = nl + 1;
        }
        rest = Buffer.from(data.subarray(at));
      }
    } finally {
      await fh.close();
    }
    return counts;
  }
}

/** Adds one `<time> <stream> <P|F> <text>` line's bytes to its stream's count. */
function countLine(line: Buffer, counts: { stdout: number; stderr: number }): void {
  const a = line.indexOf(0x20);
  const b = line.indexOf(0x20, a + 1);
  if (a < 0 || b < 0 || line.length < b + 2) return;
  const stream = line.subarray(a + 1, b).toString();
  if (stream !== 'stdout' && stream !== 'stderr') return;
  const text = Math.max(0, line.length - (b + 3));
  counts[stream] += text + (line[b + 1] === 0x46 /* F */ ? 1 : 0);
}
