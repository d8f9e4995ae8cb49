import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { KubicleError } from '../observe/errors.js';
import type { SandboxSpec } from './api/types.js';

/** What a runtime keeps per container run, in <sandbox>/containers/<name>/<attempt>/run.json. */
export interface RunRecord {
  name: string;
  attempt: number;
  id: string;
  image: string;
  imageId: string;
  createdAt: string;
  startedAt?: string;
  /** Started with an open input: attach may carry the caller's input. */
  stdin?: boolean;
  /** Set once the run is known to be over; later reads never recompute it. */
  final?: { exitCode: number; finishedAt: string; reason: string; message?: string };
}

const idPattern = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const namePattern = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Invalid unless `name` is a DNS label, as container names are. */
export function checkContainerName(name: string): void {
  if (!namePattern.test(name)) throw new KubicleError('Invalid', `invalid container name ${JSON.stringify(name)}`);
}

/**
 * A runtime's sandboxes on disk, the same layout for every runtime: <stateDir>/<id>/sandbox.json
 * (the runtime's own record type R) and a directory per container run. State lives on disk, so a
 * restarted agent finds it; records read or written are also kept in memory, because this agent
 * is their only writer and the kubelet asks for every sandbox's status every second; removal goes
 * through `remove` and `removeRun`, which drop them too. Work on one sandbox is serialised through `serial`.
 */
export class SandboxStore<R extends { spec: SandboxSpec }> {
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly saving = new Map<string, Promise<void>>();
  private readonly records = new Map<string, R>();
  /** Run records by run directory. */
  private readonly runs = new Map<string, RunRecord>();

  constructor(private readonly stateDir: string) {}

  /** The sandbox's directory; Invalid for an id that is not lower-case letters, digits, '.' and '-' (at most 63). */
  dir(id: string): string {
    if (!idPattern.test(id)) throw new KubicleError('Invalid', `invalid sandbox id ${JSON.stringify(id)}: lower-case letters, digits, '.' and '-', at most 63`);
    return path.join(this.stateDir, id);
  }

  /** Serializes work on one sandbox (create, start, stop, remove) so they never interleave. */
  serial<T>(id: string, work: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(work, work);
    const tail = next.catch(() => {});
    this.locks.set(id, tail);
    void tail.then(() => {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    });
    return next;
  }

  /** The sandbox's record; NotFound when absent. */
  async record(id: string): Promise<R> {
    const kept = this.records.get(id);
    if (kept) return kept;
    const text = await readFile(path.join(this.dir(id), 'sandbox.json'), 'utf8').catch(() => undefined);
    if (!text) throw new KubicleError('NotFound', `sandbox ${id} not found`);
    const rec = JSON.parse(text) as R;
    this.records.set(id, rec);
    return rec;
  }

  async save(id: string, rec: R): Promise<void> {
    await writeFile(path.join(this.dir(id), 'sandbox.json'), JSON.stringify(rec));
    this.records.set(id, rec);
  }

  /** Deletes a sandbox's directory (the caller has released its mounts) and what is kept of it. Idempotent. */
  async remove(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
    this.records.delete(id);
    const prefix = `${this.dir(id)}/`;
    for (const dir of this.runs.keys()) if (dir.startsWith(prefix)) this.runs.delete(dir);
  }

  /** Deletes one run's directory and its kept record. Idempotent. */
  async removeRun(id: string, name: string, attempt: number): Promise<void> {
    const runDir = this.runDir(id, name, attempt);
    await rm(runDir, { recursive: true, force: true });
    this.runs.delete(runDir);
  }

  /**
   * Writes a run's record into its run directory. A quick exit records its end while the start
   * is still recording its start, both from the same object: writes are queued, each serializes
   * the record as it is when its turn comes, and each replaces the file whole, so the last state
   * always wins and a reader never sees half a file.
   */
  saveRun(runDir: string, rec: RunRecord): Promise<void> {
    const file = path.join(runDir, 'run.json');
    const next = (this.saving.get(runDir) ?? Promise.resolve())
      .catch(() => {})
      .then(async () => {
        await writeFile(`${file}.tmp`, JSON.stringify(rec));
        await rename(`${file}.tmp`, file);
        this.runs.set(runDir, rec);
      });
    this.saving.set(runDir, next);
    void next
      .finally(() => {
        if (this.saving.get(runDir) === next) this.saving.delete(runDir);
      })
      .catch(() => {});
    return next;
  }

  /** Every sandbox id on disk. */
  async ids(): Promise<string[]> {
    return (await readdir(this.stateDir).catch(() => [] as string[])).filter((id) => idPattern.test(id));
  }

  /**
   * `read` of every sandbox on disk whose labels include all of `labels` (every sandbox without
   * them), skipping those it fails for (half-removed ones, say). Labels are matched on the kept
   * record, so sandboxes left out cost no reads of their runs.
   */
  async each<T>(read: (id: string) => Promise<T>, labels?: Record<string, string>): Promise<T[]> {
    const out: T[] = [];
    for (const id of await this.ids()) {
      if (labels) {
        const own = (await this.record(id).catch(() => undefined))?.spec.labels ?? {};
        if (!Object.entries(labels).every(([k, v]) => own[k] === v)) continue;
      }
      const r = await read(id).catch(() => undefined);
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  /** The names of the containers a sandbox has had runs of. */
  async containerNames(id: string): Promise<string[]> {
    return readdir(path.join(this.dir(id), 'containers')).catch(() => [] as string[]);
  }

  runDir(id: string, name: string, attempt: number): string {
    return path.join(this.dir(id), 'containers', name, String(attempt));
  }

  /** The attempt numbers of a container's runs on disk, oldest first. */
  async attempts(id: string, name: string): Promise<number[]> {
    const names = await readdir(path.join(this.dir(id), 'containers', name)).catch(() => [] as string[]);
    return names
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** One run's record; NotFound when absent. */
  async run(id: string, name: string, attempt: number): Promise<RunRecord> {
    const runDir = this.runDir(id, name, attempt);
    const kept = this.runs.get(runDir);
    if (kept) return kept;
    const text = await readFile(path.join(runDir, 'run.json'), 'utf8').catch(() => undefined);
    if (!text) throw new KubicleError('NotFound', `container ${name} not found in sandbox ${id}`);
    const rec = JSON.parse(text) as RunRecord;
    this.runs.set(runDir, rec);
    return rec;
  }
}
