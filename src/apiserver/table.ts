import type { KubeObject } from '../api/object.js';
import type { ResourceType } from '../api/resource-type.js';

/** meta.k8s.io Table responses built from a kind's columns. */
export type IncludeObject = 'None' | 'Metadata' | 'Object';

export function columnDefinitions(rt: ResourceType) {
  return rt.columns.map((c) => ({ name: c.name, type: c.type, format: c.format ?? '', description: c.description, priority: c.priority }));
}

export function tableRow(rt: ResourceType, obj: KubeObject, include: IncludeObject) {
  const cells = rt.columns.map((c) => {
    try {
      return c.cell(obj);
    } catch {
      return '<unknown>';
    }
  });
  const row: { cells: unknown[]; object?: unknown } = { cells };
  if (include === 'Object') row.object = obj;
  else if (include === 'Metadata') row.object = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
  return row;
}

export function toTable(
  rt: ResourceType,
  objects: KubeObject[],
  opts: { version: string; include: IncludeObject; resourceVersion?: string; continueToken?: string; withColumns?: boolean },
) {
  const table: Record<string, unknown> = {
    kind: 'Table',
    apiVersion: `meta.k8s.io/${opts.version}`,
    metadata: { resourceVersion: opts.resourceVersion, ...(opts.continueToken ? { continue: opts.continueToken } : {}) },
    columnDefinitions: opts.withColumns === false ? null : columnDefinitions(rt),
    rows: objects.map((o) => tableRow(rt, o, opts.include)),
  };
  return table;
}

export function tableContentType(version: string): string {
  return `application/json;as=Table;v=${version};g=meta.k8s.io`;
}
