import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KubeObject } from '../api/object.js';
import { groupVersion, type ResourceType } from '../api/resource-type.js';
import { isCode, KubicleError } from '../observe/errors.js';
import type { Rendering } from './negotiate.js';
import { keyFor, prefixFor, present } from './object-codec.js';
import { type ObjectStore, type Selection, selects } from './object-store.js';
import { toStatus } from './status.js';
import { columnDefinitions, type IncludeObject, tableRow } from './table.js';
import type { CachedEvent, WatchCache } from './watch-cache.js';

/**
 * A watch request: newline-delimited JSON events on a chunked 200 response, flushed at the end of
 * each turn of the event loop.
 * Selectors turn objects entering or leaving the selection into ADDED / DELETED. Errors after
 * the headers (such as 410 Gone) travel as an ERROR event with a Status, then the stream ends.
 */
export interface WatchParams extends Selection {
  namespace?: string;
  name?: string;
  resourceVersion?: string;
  timeoutSeconds?: number;
  bookmarks: boolean;
  rendering: Rendering;
  include: IncludeObject;
}

const maxWatchSeconds = 1800;
const bookmarkEveryMs = Number(process.env.KUBICLE_BOOKMARK_INTERVAL_MS ?? 60_000);

export async function serveWatch(
  req: IncomingMessage,
  res: ServerResponse,
  rt: ResourceType,
  store: ObjectStore,
  cache: WatchCache,
  p: WatchParams,
): Promise<void> {
  const prefix = p.name ? keyFor(rt, p.namespace, p.name) : prefixFor(rt, p.namespace);
  const version = p.rendering.as === 'table' ? p.rendering.version : '';
  const contentType = p.rendering.as === 'table' ? `application/json;as=Table;v=${version};g=meta.k8s.io` : 'application/json';
  let sentColumns = false;
  let lastRv = p.resourceVersion && p.resourceVersion !== '0' ? p.resourceVersion : '0';
  const encodingKey = `${groupVersion(rt)}|${version}|${p.include}`;

  const line = (type: string, obj: KubeObject, ev?: CachedEvent): string => {
    if (p.rendering.as === 'table' && type !== 'BOOKMARK' && type !== 'ERROR') {
      const table = {
        kind: 'Table',
        apiVersion: `meta.k8s.io/${version}`,
        metadata: { resourceVersion: obj.metadata.resourceVersion },
        columnDefinitions: sentColumns ? null : columnDefinitions(rt),
        rows: [tableRow(rt, obj, p.include)],
      };
      sentColumns = true;
      return `${JSON.stringify({ type, object: table })}\n`;
    }
    // Serialise once per event, type and version: shared by every watcher of this shape.
    if (ev && p.rendering.as === 'object') {
      const k = `${encodingKey}|${type}|${obj === ev.prev ? 'prev' : 'obj'}`;
      ev.encoded ??= new Map();
      let s = ev.encoded.get(k);
      if (!s) {
        s = `${JSON.stringify({ type, object: obj })}\n`;
        ev.encoded.set(k, s);
      }
      return s;
    }
    return `${JSON.stringify({ type, object: obj })}\n`;
  };

  let closed = false;
  let cancel: (() => void) | undefined;
  // Events of one turn of the event loop go out as one chunk: one TLS record and one syscall
  // per watcher and burst, not per event, which is most of the cost of fanning out a burst.
  let pending: string[] = [];
  const flush = () => {
    if (closed || !pending.length) return;
    res.write(pending.length === 1 ? pending[0] : pending.join(''));
    pending = [];
  };
  const finish = () => {
    if (closed) return;
    flush();
    closed = true;
    cancel?.();
    clearTimeout(timer);
    clearInterval(bookmarkTimer);
    res.end();
  };
  const write = (s: string) => {
    if (closed) return;
    if (!pending.length) setImmediate(flush);
    pending.push(s);
  };
  const sendError = (err: unknown) => {
    const st = toStatus(isCode(err, 'Gone') ? new KubicleError('Gone', `too old resource version: ${p.resourceVersion} (${cache.revision})`) : err);
    write(`${JSON.stringify({ type: 'ERROR', object: st })}\n`);
    finish();
  };

  const presented = new Map<KubeObject, KubeObject>();
  const view = (o: KubeObject): KubeObject => {
    let v = presented.get(o);
    if (!v) {
      v = present(rt, o);
      presented.set(o, v);
      if (presented.size > 64) presented.delete(presented.keys().next().value as KubeObject);
    }
    return v;
  };

  const onEvent = (ev: CachedEvent) => {
    if (closed) return;
    const cur = view(ev.object);
    const prev = ev.prev ? view(ev.prev) : undefined;
    if (p.name && cur.metadata.name !== p.name) return;
    lastRv = String(ev.revision);
    if (ev.type === 'delete') {
      if (selects(rt, p, cur)) write(line('DELETED', cur, ev));
      return;
    }
    const now = selects(rt, p, cur);
    const before = prev ? selects(rt, p, prev) : false;
    if (now && !prev) write(line('ADDED', cur, ev));
    else if (now && before) write(line('MODIFIED', cur, ev));
    else if (now && !before) write(line('ADDED', cur, ev));
    else if (!now && before && prev) {
      const gone = { ...prev, metadata: { ...prev.metadata, resourceVersion: cur.metadata.resourceVersion } };
      write(line('DELETED', gone));
    }
  };

  const timeout = Math.min(p.timeoutSeconds ?? maxWatchSeconds, maxWatchSeconds);
  const timer = setTimeout(finish, timeout * 1000);
  const bookmarkTimer = setInterval(() => {
    if (p.bookmarks) write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: rt.kind, apiVersion: groupVersion(rt), metadata: { resourceVersion: String(Math.max(Number(lastRv), cache.revision)) } } })}\n`);
  }, bookmarkEveryMs);
  req.on('close', finish);
  res.on('error', finish);

  res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();

  try {
    let after: number;
    if (!p.resourceVersion || p.resourceVersion === '0') {
      // Synthetic ADDED events for the current state, then changes after it.
      const list = await store.list(rt, p.namespace, { labels: p.labels, fields: p.fields });
      for (const o of list.items) if (!p.name || o.metadata.name === p.name) write(line('ADDED', o));
      after = Number(list.resourceVersion);
    } else {
      after = Number(p.resourceVersion);
      if (!Number.isInteger(after)) throw new KubicleError('BadRequest', `invalid resource version: ${p.resourceVersion}`);
    }
    if (closed) return;
    cancel = await cache.subscribe(prefix, after, onEvent, sendError);
    if (closed) cancel();
  } catch (err) {
    sendError(err);
  }
}
