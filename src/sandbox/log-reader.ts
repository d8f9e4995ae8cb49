import { type FSWatcher, watch } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { LogOptions } from './api/types.js';

/**
 * Reads a container log in the Kubernetes log-file format conmon writes
 * (`<RFC 3339 time> <stdout|stderr> <P|F> <text>`, P for a partial line) and yields the text the
 * way the kubelet serves it: whole lines, optionally prefixed by their time, after `sinceTime`,
 * only the last `tailLines`, at most `limitBytes`. With `follow` it keeps reading as the file
 * grows until `finished()` says the run is over and nothing is left, or `signal` aborts.
 */
export function readLog(file: string, opts: LogOptions, finished: () => Promise<boolean>, signal: AbortSignal): Promise<Readable> {
  return Promise.resolve(Readable.from(lines(file, opts, finished, signal)));
}

interface Line {
  time: string;
  text: string;
  /** The end of the output without a newline (P lines nothing followed): shown without one, as upstream does. */
  unterminated?: boolean;
}

/** One record of the log file: a whole line (F) or a piece of one (P) the writer flushed early. */
interface LogRecord {
  time: string;
  partial: boolean;
  text: Buffer;
}

/**
 * A log file read as it grows, record by record. The file stays open from the first read on:
 * when a pod is deleted its sandbox, log and all, may be removed the moment the container exits,
 * and a follower still has the last records to read.
 */
class LogFile {
  private fh: FileHandle | undefined;
  private rest: Buffer = Buffer.alloc(0);

  constructor(
    private readonly file: string,
    private pos = 0,
  ) {}

  /** Starts at the file's end as it is now (or at 0 for a file not yet written). */
  async skipToEnd(): Promise<void> {
    this.fh ??= await open(this.file, 'r').catch(() => undefined);
    if (this.fh) this.pos = (await this.fh.stat()).size;
  }

  /** The records written since the last call; a record cut off by the read waits for its end. */
  async read(): Promise<LogRecord[]> {
    this.fh ??= await open(this.file, 'r').catch(() => undefined);
    if (!this.fh) return [];
    const { size } = await this.fh.stat();
    if (size < this.pos) this.pos = 0; // truncated by conmon at its size limit: start over
    if (size === this.pos) return [];
    const buf = Buffer.alloc(size - this.pos);
    const { bytesRead } = await this.fh.read(buf, 0, buf.length, this.pos);
    this.pos += bytesRead;
    const data = this.rest.length ? Buffer.concat([this.rest, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
    const out: LogRecord[] = [];
    let at = 0;
    for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, at)) {
      const raw = data.subarray(at, nl);
      at = nl + 1;
      const a = raw.indexOf(0x20);
      const b = raw.indexOf(0x20, a + 1);
      const c = raw.indexOf(0x20, b + 1);
      if (a < 0 || b < 0) continue;
      out.push({ time: raw.subarray(0, a).toString(), partial: raw.subarray(b + 1, c < 0 ? undefined : c).toString() === 'P', text: c < 0 ? Buffer.alloc(0) : Buffer.from(raw.subarray(c + 1)) });
    }
    this.rest = Buffer.from(data.subarray(at));
    return out;
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
  }
}

async function* lines(file: string, opts: LogOptions, finished: () => Promise<boolean>, signal: AbortSignal): AsyncGenerator<string> {
  const since = opts.sinceTime ? Date.parse(opts.sinceTime) : undefined;
  let budget = opts.limitBytes ?? Number.POSITIVE_INFINITY;
  const log = new LogFile(file);
  // Lines are joined as bytes and decoded whole: a character split between writes stays whole.
  let partial: Buffer[] = [];
  let partialTime = '';
  const render = (l: Line) => `${opts.timestamps ? `${rfc3339Nano(l.time)} ` : ''}${l.text}${l.unterminated ? '' : '\n'}`;
  /** What P lines left at the end of what is read so far, once it is clear nothing completes them. */
  const unfinished = (): Line[] => {
    const text = Buffer.concat(partial).toString();
    partial = [];
    return text && (since === undefined || Date.parse(partialTime) >= since) ? [{ time: partialTime, text, unterminated: true }] : [];
  };
  const next = async (): Promise<Line[]> => {
    const out: Line[] = [];
    for (const r of await log.read()) {
      partial.push(r.text);
      if (r.partial) {
        partialTime = r.time;
        continue;
      }
      // A terminal ends its lines with CR LF; kubectl shows them without the CR.
      out.push({ time: r.time, text: Buffer.concat(partial).toString().replace(/\r$/, '') });
      partial = [];
    }
    return out.filter((l) => since === undefined || Date.parse(l.time) >= since);
  };
  const emit = function* (ls: Line[]): Generator<string> {
    for (const l of ls) {
      const s = render(l);
      if (budget <= 0) return;
      const bytes = Buffer.byteLength(s);
      if (bytes > budget) {
        yield Buffer.from(s).subarray(0, budget).toString('utf8');
        budget = 0;
        return;
      }
      budget -= bytes;
      yield s;
    }
  };
  try {
    let first = await next();
    if (!opts.follow) first.push(...unfinished());
    if (opts.tailLines !== undefined) first = opts.tailLines <= 0 ? [] : first.slice(-opts.tailLines);
    yield* emit(first);
    if (!opts.follow) return;
    while (!signal.aborted && budget > 0) {
      // A run whose records are already gone is over too.
      const over = await finished().catch(() => true);
      const more = await next();
      yield* emit(more);
      if (over && !more.length) {
        yield* emit(unfinished());
        return;
      }
      if (!more.length) await pause();
    }
  } finally {
    await log.close();
  }
}

/**
 * What a container writes from this moment on, byte for byte as it comes — partial lines (a
 * shell's prompt) at once, a terminal's CR LF kept — which is what an attached client shows.
 * "From this moment" is the log's end when called, a position: a time filter would drop output
 * whenever the clock steps back. Ends like a followed readLog: when `finished()` and all is read,
 * or on `signal`.
 */
export async function tailLog(file: string, finished: () => Promise<boolean>, signal: AbortSignal): Promise<Readable> {
  const log = new LogFile(file);
  await log.skipToEnd();
  // A keystroke's echo should not wait for a poll: the file's change events wake the reader,
  // and the poll remains for a file that cannot be watched.
  let wake: (() => void) | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(file, { persistent: false }, () => wake?.());
    watcher.on('error', () => {});
  } catch {}
  const changed = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 100);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  async function* records(): AsyncGenerator<Buffer> {
    try {
      while (!signal.aborted) {
        const over = await finished().catch(() => true);
        const more = await log.read();
        for (const r of more) yield r.partial ? r.text : Buffer.concat([r.text, newline]);
        if (over && !more.length) return;
        if (!more.length) await changed();
      }
    } finally {
      watcher?.close();
      await log.close();
    }
  }
  return Readable.from(records(), { objectMode: false });
}

const newline = Buffer.from('\n');
const pause = () => new Promise((r) => setTimeout(r, 100));

/**
 * A log time as the kubelet prints it with --timestamps (Go's time.RFC3339Nano): UTC with a Z,
 * the fraction without trailing zeros. Log writers differ (conmon writes +00:00); clients that
 * parse the prefix expect upstream's form. A time it cannot read is passed through.
 */
export function rfc3339Nano(t: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return t;
  const utc = m[3] === 'Z' || m[3] === '+00:00' || m[3] === '-00:00' ? m[1] : new Date(`${m[1]}${m[3]}`).toISOString().slice(0, 19);
  const frac = (m[2] ?? '').replace(/0+$/, '');
  return `${utc}${frac ? `.${frac}` : ''}Z`;
}
