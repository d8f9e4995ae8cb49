import type { FieldErrors } from '../field-errors.js';
import { deepEqual, type KubeObject } from '../object.js';
import { labelSelectorToString, matchesLabels, parseLabelSelector } from '../selectors.js';

/** Rules every controller-owned workload shares: a selector that selects its own template. */
export function validateSelector(o: KubeObject, errs: FieldErrors, templatePath = 'spec.template'): void {
  const sel = o.spec?.selector;
  if (!sel || (!Object.keys(sel.matchLabels ?? {}).length && !(sel.matchExpressions ?? []).length)) {
    errs.required('spec.selector');
    return;
  }
  const labels = templatePath === 'spec.template' ? o.spec?.template?.metadata?.labels : o.spec?.jobTemplate?.spec?.template?.metadata?.labels;
  let selected = false;
  try {
    selected = matchesLabels(parseLabelSelector(labelSelectorToString(sel)), labels ?? {});
  } catch {
    errs.invalid('spec.selector', sel, 'invalid label selector');
    return;
  }
  if (!selected) {
    const shown = `map[string]string{${Object.entries(labels ?? {})
      .map(([k, v]) => `"${k}":"${v}"`)
      .join(', ')}}`;
    errs.invalid(`${templatePath}.metadata.labels`, shown, '`selector` does not match template `labels`');
  }
}

export function validateReplicas(o: KubeObject, errs: FieldErrors): void {
  const r = o.spec?.replicas;
  if (r !== undefined && !(Number.isInteger(r) && r >= 0)) errs.invalid('spec.replicas', r, 'must be greater than or equal to 0');
}

export function immutableSelector(o: KubeObject, old: KubeObject, errs: FieldErrors): void {
  if (!deepEqual(o.spec?.selector, old.spec?.selector)) errs.immutable('spec.selector', o.spec?.selector);
}
