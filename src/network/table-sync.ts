import type { Logger } from '../observe/log.js';
import { nft } from './host-net.js';

/** The named objects of one rendered `table ip NAME { … }` definition. */
interface TableObjects {
  table: string;
  chains: Set<string>;
  /** Sets and maps by name; `dynamic` ones are filled by the datapath (affinity), not by the rendering. */
  sets: Map<string, { kind: 'set' | 'map'; dynamic: boolean }>;
}

/**
 * Reads the objects out of a definition in the layout the renderers write: one `table ip` block
 * whose chains, sets and maps open on lines of their own, indented by one tab.
 */
export function tableObjects(definition: string): TableObjects {
  const table = /^table ip (\S+) \{/m.exec(definition)?.[1];
  if (!table) throw new Error('not a table definition');
  const chains = new Set([...definition.matchAll(/^\tchain (\S+) \{/gm)].map((m) => m[1]));
  const sets = new Map<string, { kind: 'set' | 'map'; dynamic: boolean }>();
  for (const m of definition.matchAll(/^\t(set|map) (\S+) \{\n([\s\S]*?)^\t\}/gm)) {
    sets.set(m[2], { kind: m[1] as 'set' | 'map', dynamic: /^\t\tflags [^\n]*\bdynamic\b/m.test(m[3]) });
  }
  return { table, chains, sets };
}

/**
 * The nft script that turns the table `previous` described into `definition`, as one transaction.
 * Without a previous state the table is deleted and made anew. With one, every rule and every
 * rendered element is flushed, vanished objects are deleted and the definition adds the rest back:
 * sets the datapath fills (ClientIP affinity) keep their elements, which a whole-table swap loses.
 */
export function transition(definition: string, previous?: TableObjects): string {
  const now = tableObjects(definition);
  const t = `ip ${now.table}`;
  if (!previous || previous.table !== now.table) return `add table ${t}\ndelete table ${t}\n${definition}`;
  const lines = [`flush table ${t}`];
  for (const [name, s] of previous.sets) if (!s.dynamic) lines.push(`flush ${s.kind} ${t} ${name}`);
  for (const name of previous.chains) if (!now.chains.has(name)) lines.push(`delete chain ${t} ${name}`);
  for (const [name, s] of previous.sets) {
    const next = now.sets.get(name);
    // A set whose kind or filling changed is remade: nft cannot redefine a set in place.
    if (!next || next.kind !== s.kind || next.dynamic !== s.dynamic) lines.push(`delete ${s.kind} ${t} ${name}`);
  }
  return `${lines.join('\n')}\n${definition}`;
}

/**
 * Keeps one nftables table in step with a rendering of the current state (a `table ip` definition).
 * Changes coalesce: a burst of updates costs one swap, and a swap starts a few milliseconds after
 * the change that prompted it; swaps never overlap. Each swap is one transaction (see transition):
 * the kernel holds the old table or the new one, never half of either. A failed swap leaves the old
 * table in force and is retried from a clean slate.
 */
export class TableSync {
  private dirty = false;
  private syncing?: Promise<void>;
  private stopped = false;
  /** What the last successful swap put in the kernel; unknown at first and after a failure. */
  private applied?: TableObjects;
  /** The definition of that swap: a rendering equal to it needs no swap (pods that come and go unselected). */
  private appliedDefinition?: string;

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
        const definition = this.render();
        if (this.applied && definition === this.appliedDefinition) continue;
        try {
          await nft(transition(definition, this.applied));
          this.applied = tableObjects(definition);
          this.appliedDefinition = definition;
          this.log.debug('nft table swapped');
        } catch (err) {
          this.applied = undefined;
          this.appliedDefinition = undefined;
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
