import { createWriteStream, type WriteStream } from 'node:fs';

/**
 * Writes a container's output in the Kubernetes log-file format that log-reader.ts reads and
 * conmon writes for runc (`<RFC 3339 time> <stdout|stderr> <P|F> <text>`): each whole line as F,
 * and what is left of a line at the end of a chunk as P, so nothing waits for a newline.
 */
export class LogWriter {
  private readonly out: WriteStream;

  constructor(file: string) {
    this.out = createWriteStream(file, { flags: 'a' });
    this.out.on('error', () => {});
  }

  write(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const time = new Date().toISOString().replace('Z', '000000Z');
    const text = chunk.toString();
    const parts = text.split('\n');
    const tail = parts.pop() ?? '';
    let lines = '';
    for (const p of parts) lines += `${time} ${stream} F ${p.replace(/\r$/, '')}\n`;
    if (tail) lines += `${time} ${stream} P ${tail}\n`;
    this.out.write(lines);
  }

  /** Resolves once everything written is on disk. */
  close(): Promise<void> {
    return new Promise((resolve) => this.out.end(resolve));
  }
}
