import type { Logger } from '../observe/log.js';
import { Informer } from './informer.js';
import type { KubeClient } from './kube-client.js';

/**
 * Shares one informer per collection among controllers (one watch on pods, not one per
 * controller). `start` runs every informer created so far; later ones start themselves.
 */
export class InformerFactory {
  private readonly informers = new Map<string, Informer>();
  private signal?: AbortSignal;
  private readonly running: Promise<void>[] = [];

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
  ) {}

  for(path: string): Informer {
    let inf = this.informers.get(path);
    if (!inf) {
      inf = new Informer(this.client, path, this.log);
      this.informers.set(path, inf);
      if (this.signal) this.running.push(inf.run(this.signal));
    }
    return inf;
  }

  start(signal: AbortSignal): void {
    this.signal = signal;
    for (const inf of this.informers.values()) this.running.push(inf.run(signal));
  }

  /** Resolves when every informer has delivered its first list. */
  async synced(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.synced));
  }

  async stopped(): Promise<void> {
    await Promise.all(this.running);
  }
}
