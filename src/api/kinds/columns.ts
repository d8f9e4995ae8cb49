import type { KubeObject } from '../object.js';
import type { Column } from '../resource-type.js';
import { labelSelectorToString } from '../selectors.js';
import { age } from '../time.js';

/** Column builders shared by the kinds' tables. */
export const nameColumn: Column = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace.',
  priority: 0,
  cell: (o) => o.metadata.name ?? '',
};

export const ageColumn: Column = {
  name: 'Age',
  type: 'string',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
  priority: 0,
  cell: (o) => age(o.metadata.creationTimestamp),
};

export function col(name: string, cell: (o: KubeObject) => string | number | boolean, opts: { wide?: boolean; type?: Column['type']; description?: string } = {}): Column {
  return { name, type: opts.type ?? 'string', description: opts.description ?? name, priority: opts.wide ? 1 : 0, cell };
}

export function containersOf(podSpec: KubeObject['spec'] | undefined): { names: string; images: string } {
  const cs = (podSpec?.containers ?? []) as { name: string; image: string }[];
  return { names: cs.map((c) => c.name).join(','), images: cs.map((c) => c.image).join(',') };
}

/** CONTAINERS, IMAGES, SELECTOR wide columns of workload kinds. */
export function workloadWideColumns(templatePath: (o: KubeObject) => KubeObject['spec'] | undefined): Column[] {
  return [
    col('Containers', (o) => containersOf(templatePath(o)).names, { wide: true }),
    col('Images', (o) => containersOf(templatePath(o)).images, { wide: true }),
    col('Selector', (o) => labelSelectorToString(o.spec?.selector) || '<none>', { wide: true }),
  ];
}

export const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
export const orNone = (v: unknown): string => (v === undefined || v === null || v === '' ? '<none>' : String(v));
