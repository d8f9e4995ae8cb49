import { rm } from 'node:fs/promises';
import { KubicleError } from '../observe/errors.js';
import { childName } from './api/host-paths.js';

/**
 * Host directories the agent's callers may remove: direct children of the roots the operator
 * configured (where a node keeps its local volumes), and nothing else on the host. A node removes
 * a deleted volume's data this way; the name test keeps `..`, `/` and hidden names out.
 */
export class HostDirs {
  constructor(private readonly roots: readonly string[]) {}

  /** Removes the directory and everything in it; done already if it is not there. */
  async remove(dir: string): Promise<void> {
    if (!this.roots.some((root) => childName(root, dir))) {
      const roots = this.roots.length ? this.roots.join(', ') : 'none configured';
      throw new KubicleError('Forbidden', `${JSON.stringify(dir)} is not a directory this host lets callers remove (only those directly under: ${roots})`);
    }
    await rm(dir, { recursive: true, force: true });
  }
}
