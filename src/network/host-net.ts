import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { KubicleError } from '../observe/errors.js';

/**
 * The host's network tools for the network layer: nft scripts, ip commands and sysctls. Each
 * rejects with the tool's own message (code Internal, or Invalid for a script nft refused to parse).
 */

/** Runs an nft script as one transaction: all of it applies or none. */
export function nft(script: string, check = false): Promise<void> {
  return run('nft', [...(check ? ['-c'] : []), '-f', '-'], script).catch((err: Error) => {
    throw new KubicleError(/syntax error|Error:/.test(err.message) ? 'Invalid' : 'Internal', `nft: ${err.message}`);
  });
}

/** Removes an `ip` family table if it exists. */
export function removeTable(table: string): Promise<void> {
  return nft(`add table ip ${table}\ndelete table ip ${table}\n`);
}

/** Runs `ip` commands in one batch. */
export function ip(commands: string[]): Promise<void> {
  return run('ip', ['-batch', '-'], `${commands.join('\n')}\n`).catch((err: Error) => {
    throw new KubicleError('Internal', `ip: ${err.message}`);
  });
}

/** Sets a sysctl (e.g. net.ipv4.ip_forward) if it is not set already; Unavailable if the kernel lacks it. */
export async function ensureSysctl(name: string, value: string): Promise<void> {
  const file = `/proc/sys/${name.replaceAll('.', '/')}`;
  const now = await readFile(file, 'utf8').catch(() => undefined);
  if (now === undefined) throw new KubicleError('Unavailable', `sysctl ${name} is not available on this kernel`);
  if (now.trim() !== value) await writeFile(file, value);
}

function run(cmd: string, args: string[], input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(err.trim() || `exit ${code}`))));
    child.stdin.end(input);
  });
}
