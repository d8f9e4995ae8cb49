import { lstat, readFile } from 'node:fs/promises';
import path from 'node:path';
import { KubicleError } from '../observe/errors.js';

/**
 * The uid, gid and extra groups a container runs as: the spec's numbers when given, else the
 * image's `User` ("name", "uid", "name:group", "uid:gid") looked up in the container's own
 * /etc/passwd and /etc/group. Those files are read only if they are plain files (a symlink in an
 * image could point at the host's). A name that is not there is Invalid, as runc reports it.
 */
export async function resolveUser(
  rootfs: string,
  imageUser: string | undefined,
  spec: { uid?: number; gid?: number; supplementalGroups?: number[] } = {},
): Promise<{ uid: number; gid: number; additionalGids: number[] }> {
  const passwd = await readPlain(rootfs, 'etc/passwd');
  const group = await readPlain(rootfs, 'etc/group');
  const users = passwd.map((l) => l.split(':')).filter((f) => f.length >= 4);
  const groups = group.map((l) => l.split(':')).filter((f) => f.length >= 3);
  let uid: number;
  let gid: number | undefined;
  if (spec.uid !== undefined) {
    uid = spec.uid;
    gid = spec.gid ?? Number(users.find((u) => Number(u[2]) === uid)?.[3] ?? 0);
  } else {
    const [u, g] = (imageUser || '0').split(':');
    if (/^\d+$/.test(u)) {
      uid = Number(u);
      gid = Number(users.find((x) => Number(x[2]) === uid)?.[3] ?? 0);
    } else {
      const entry = users.find((x) => x[0] === u);
      if (!entry) throw new KubicleError('Invalid', `unable to find user ${u}: no matching entries in passwd file`);
      uid = Number(entry[2]);
      gid = Number(entry[3]);
    }
    if (g !== undefined && g !== '') {
      if (/^\d+$/.test(g)) gid = Number(g);
      else {
        const entry = groups.find((x) => x[0] === g);
        if (!entry) throw new KubicleError('Invalid', `unable to find group ${g}: no matching entries in group file`);
        gid = Number(entry[2]);
      }
    }
    if (spec.gid !== undefined) gid = spec.gid;
  }
  const name = users.find((x) => Number(x[2]) === uid)?.[0];
  const member = name ? groups.filter((x) => (x[3] ?? '').split(',').includes(name)).map((x) => Number(x[2])) : [];
  const additionalGids = [...new Set([gid ?? 0, ...member, ...(spec.supplementalGroups ?? [])])];
  return { uid, gid: gid ?? 0, additionalGids };
}

async function readPlain(rootfs: string, rel: string): Promise<string[]> {
  let cur = rootfs;
  for (const part of rel.split('/')) {
    cur = path.join(cur, part);
    const st = await lstat(cur).catch(() => undefined);
    if (!st || st.isSymbolicLink()) return [];
  }
  const text = await readFile(cur, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l && !l.startsWith('#'));
}
