import path from 'node:path';

/**
 * The one shape of host directory the Sandbox API lets callers name for removal or, through a
 * tenant's gateway, for a volume: a direct child of a known root whose name cannot climb or hide
 * (no `..`, `/` or leading dot). Returns that name, or undefined for anything else.
 */
export function childName(root: string, dir: string): string | undefined {
  if (typeof dir !== 'string' || !path.posix.isAbsolute(dir) || path.posix.normalize(dir) !== dir || path.posix.dirname(dir) !== root) return undefined;
  const name = path.posix.basename(dir);
  return /^[A-Za-z0-9][-A-Za-z0-9_.]{0,252}$/.test(name) ? name : undefined;
}
