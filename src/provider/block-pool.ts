import { type Cidr, formatIPv4 } from '../api/ipv4.js';
import { KubicleError } from '../observe/errors.js';

/**
 * Blocks of one size handed out from a range, each to one owner: cluster endpoint addresses (/32)
 * from the endpoint pool, cluster pod ranges (/24) from the pod pool. The allocation itself is
 * recorded by the caller (in the Cluster's status); a restarted provider tells the pool what is
 * taken with take().
 */
export class BlockPool {
  private readonly taken = new Set<string>();
  private readonly blockSize: number;

  /** `skip` blocks at the start are never handed out (the network address, the provider's own). */
  constructor(
    private readonly pool: Cidr,
    private readonly blockBits: number,
    private readonly skip = 0,
    private readonly skipLast = 0,
  ) {
    if (blockBits < pool.bits) throw new KubicleError('Invalid', `${pool.text} is smaller than one /${blockBits} block`);
    this.blockSize = 2 ** (32 - blockBits);
  }

  /** A free block, marked taken (an address for /32, else "a.b.c.d/n"). Unavailable when none is left. */
  allocate(): string {
    const count = this.pool.size / this.blockSize;
    for (let i = this.skip; i < count - this.skipLast; i++) {
      const block = this.format(this.pool.base + i * this.blockSize);
      if (!this.taken.has(block)) {
        this.taken.add(block);
        return block;
      }
    }
    throw new KubicleError('Unavailable', `${this.pool.text} has no free /${this.blockBits} left`);
  }

  take(block: string): void {
    this.taken.add(block);
  }

  release(block: string): void {
    this.taken.delete(block);
  }

  private format(base: number): string {
    return this.blockBits === 32 ? formatIPv4(base) : `${formatIPv4(base)}/${this.blockBits}`;
  }
}
