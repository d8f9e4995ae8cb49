import type { Logger } from '../observe/log.js';
import type { Backend } from '../storage/backend.js';

/**
 * Compacts the store's history like upstream: every interval, to the revision that was
 * current one interval ago, so watchers and paginated lists have at least that long. An interval
 * of 0 never compacts: an etcd shared by many clusters has one revision for all, and only its
 * owner may cut its history.
 */
export async function runCompactor(backend: Backend, log: Logger, signal: AbortSignal, intervalMs = 5 * 60_000): Promise<void> {
  if (intervalMs <= 0) return;
  let previous = 0;
  while (!signal.aborted) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, intervalMs);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
    if (signal.aborted) return;
    try {
      const current = await backend.currentRevision();
      if (previous > 0) {
        await backend.compact(previous);
        log.info('compacted store', { revision: previous });
      }
      previous = current;
    } catch (err) {
      log.warn('compaction failed', { err });
    }
  }
}
