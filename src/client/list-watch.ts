import type { Logger } from '../observe/log.js';
import type { KubeClient, Obj, WatchEvent } from './kube-client.js';

/**
 * Keeps a handler told about every object of one resource: LIST, then WATCH from the list's
 * resourceVersion; on a watch that ends it resumes from the last seen version, and on 410 it
 * lists again. `onSync` gets the full list after every (re)list.
 */
export interface ListWatchHandler {
  onSync?(items: Obj[]): void | Promise<void>;
  onEvent(ev: WatchEvent): void | Promise<void>;
}

export async function listWatch(client: KubeClient, path: string, handler: ListWatchHandler, log: Logger, signal: AbortSignal): Promise<void> {
  let rv = '';
  while (!signal.aborted) {
    try {
      if (!rv) {
        const list = await client.get(path);
        rv = list.metadata?.resourceVersion ?? '0';
        await handler.onSync?.(list.items ?? []);
      }
      let expired = false;
      const q = `${path.includes('?') ? '&' : '?'}watch=true&allowWatchBookmarks=true&timeoutSeconds=300&resourceVersion=${rv}`;
      await client.watch(
        path + q,
        (ev) => {
          if (ev.type === 'ERROR') {
            expired = ev.object?.code === 410;
            return;
          }
          rv = ev.object?.metadata?.resourceVersion ?? rv;
          if (ev.type !== 'BOOKMARK') void Promise.resolve(handler.onEvent(ev)).catch((err) => log.warn('watch handler failed', { path, err }));
        },
        signal,
      );
      if (expired) rv = '';
    } catch (err) {
      if (signal.aborted) return;
      log.warn('list-watch failed, retrying', { path, err });
      rv = '';
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
