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
}

async function* lines(file: string, opts: LogOptions, finished: () => Promise<boolean>, signal: AbortSignal): AsyncGenerator<string> {
  const since = opts.sinceTime ? Date.parse(opts.sinceTime) : undefined;
  let budget = opts.limitBytes ?? Number.POSITIVE_INFINITY;
  let pos = 0;
  let rest = '';
  let partial = '';
  const render = (l: Line) => (opts.timestamps ? `${rfc3339Nano(l.time)} ${l.text}\n` : `${l.text}\n`);
  const parse = (chunk: string): Line[] => {
    const out: Line[] = [];
    const all = (rest + chunk).split('\n');
    rest = all.pop() ?? '';
    for (const raw of all) {
      const a = raw.indexOf(' ');
      const b = raw.indexOf(' ', a + 1);
      const c = raw.indexOf(' ', b + 1);
      if (a < 0 || b < 0) continue;
      const tag = raw.slice(b + 1, c < 0 ? undefined : c);
      const text = c < 0 ? '' : raw.slice(c + 1);
      if (tag === 'P') {
        partial += text;
        continue;
      }
      out.push({ time: raw.slice(0, a), text: partial + text });
      partial = '';
    }
    return out.filter((l) => since === undefined || Date.parse(l.time) >= since);
  };
  // The file stays open from the first read on: when a pod is deleted its sandbox, log and all,
  // may be removed the moment the container exits, and a follower still has the last lines to read.
  let fh: FileHandle | undefined;
  const read = async (): Promise<string> => {
    fh ??= await open(file, 'r').catch(() => undefined);
    if (!fh) return '';
    const { size } = await fh.stat();
    if (size < pos) pos = 0; // truncated by conmon at its size limit: start over
    if (size === pos) return '';
    const buf = Buffer.alloc(size - pos);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    pos += bytesRead;
    return buf.subarray(0, bytesRead).toString('utf8');
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
    if (opts.tailLines !== undefined) first = opts.tailLines <= 0 ? [] : first.slice(-opts.tailLines);
    yield* emit(first);
    if (!opts.follow) return;
    while (!signal.aborted && budget > 0) {
      // A run whose records are already gone is over too.
      const over = await finished().catch(() => true);
      const more = parse(await read());
      yield* emit(more);
      if (over && !more.length) return;
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
