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

async function* lines(file: string, opts: LogOptions, finished: () => Promise<boolean>, signal: AbortSignal): AsyncGenerator<string> {
  const since = opts.sinceTime ? Date.parse(opts.sinceTime) : undefined;
  let budget = opts.limitBytes ?? Number.POSITIVE_INFINITY;
  let pos = 0;
  let rest: Buffer = Buffer.alloc(0);
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
  const parse = (chunk: Buffer): Line[] => {
    const out: Line[] = [];
    const data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
    let at = 0;
    for (let nl = data.indexOf(0x0a); nl >= 0; nl = data.indexOf(0x0a, at)) {
      const raw = data.subarray(at, nl);
      at = nl + 1;
      const a = raw.indexOf(0x20);
      const b = raw.indexOf(0x20, a + 1);
      const c = raw.indexOf(0x20, b + 1);
      if (a < 0 || b < 0) continue;
      const tag = raw.subarray(b + 1, c < 0 ? undefined : c).toString();
      partial.push(c < 0 ? Buffer.alloc(0) : raw.subarray(c + 1));
      if (tag === 'P') {
        partialTime = raw.subarray(0, a).toString();
        continue;
      }
      // A terminal ends its lines with CR LF; kubectl shows them without the CR.
      out.push({ time: raw.subarray(0, a).toString(), text: Buffer.concat(partial).toString().replace(/\r$/, '') });
      partial = [];
    }
    rest = Buffer.from(data.subarray(at));
    return out.filter((l) => since === undefined || Date.parse(l.time) >= since);
  };
  // The file stays open from the first read on: when a pod is deleted its sandbox, log and all,
  // may be removed the moment the container exits, and a follower still has the last lines to read.
  let fh: FileHandle | undefined;
  const read = async (): Promise<Buffer> => {
    const none = Buffer.alloc(0);
    fh ??= await open(file, 'r').catch(() => undefined);
    if (!fh) return none;
    const { size } = await fh.stat();
    if (size < pos) pos = 0; // truncated by conmon at its size limit: start over
    if (size === pos) return none;
    const buf = Buffer.alloc(size - pos);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    pos += bytesRead;
    return buf.subarray(0, bytesRead);
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
    let first = parse(await read());
    if (!opts.follow) first.push(...unfinished());
    if (opts.tailLines !== undefined) first = opts.tailLines <= 0 ? [] : first.slice(-opts.tailLines);
    yield* emit(first);
    if (!opts.follow) return;
    while (!signal.aborted && budget > 0) {
      // A run whose records are already gone is over too.
      const over = await finished().catch(() => true);
      const more = parse(await read());
      yield* emit(more);
      if (over && !more.length) {
        yield* emit(unfinished());
        return;
      }
      if (!more.length) await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await fh?.close();
  }
}

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
