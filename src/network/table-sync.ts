import type { Logger } from '../observe/log.js';
import { nft } from './host-net.js';

/**
 * Keeps one nftables table in step with a rendering of the current state. Changes coalesce: a
 * burst of updates costs one swap, and a swap starts a few milliseconds after the change that
 * prompted it; swaps never overlap. A failed swap leaves the old table in force and is retried.
 */
export class TableSync {
  private dirty = false;
  private syncing?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly render: () => string,
    private readonly log: Logger,
  ) {}

  /** Swaps in the table for the current state; resolves once a swap that saw this call is done. */
  schedule(): Promise<void> {
    this.dirty = true;
    this.syncing ??= (async () => {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        // Let the rest of a burst (a rollout's many endpoint updates) land in this swap.
        await new Promise((r) => setTimeout(r, 5));
        try {
          await nft(this.render());
          this.log.debug('nft table swapped');
        } catch (err) {
          this.log.error('nft table not swapped; the previous one stays', { err });
          setTimeout(() => void this.schedule(), 1000).unref();
        }
      }
      this.syncing = undefined;
    })();
    return this.syncing;
  }

  /** Waits for a running swap and stops retries. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.syncing?.catch(() => {});
  }
}
