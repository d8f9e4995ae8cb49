import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawClient } from '../support/http.js';
import { cleanup, eventually, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/**
 * CustomResourceDefinitions with stock kubectl 1.27 and 1.33: a CRD's whole life (established,
 * objects validated, defaulted and pruned by its schema, printer columns, categories and short
 * names, status and scale subresources, two versions on one storage, explain, deletion taking
 * its objects along) and hostile schemas and bodies refused while the server stays up.
 */
const group = 'stable.example.com';

function crd(plural: string, kind: string, short: string) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: 'Namespaced',
      names: { plural, kind, shortNames: [short], categories: ['all'] },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {}, scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' } },
          additionalPrinterColumns: [
            { name: 'Schedule', type: 'string', jsonPath: '.spec.cronSpec' },
            { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${kind} runs an image on a schedule.`,
              properties: {
                spec: {
                  type: 'object',
                  description: 'What to run and when.',
                  required: ['cronSpec'],
                  properties: {
                    cronSpec: { type: 'string', description: 'The schedule, in cron format.', pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$' },
                    image: { type: 'string', maxLength: 20 },
                    replicas: { type: 'integer', minimum: 1, maximum: 10, default: 1 },
                    port: { 'x-kubernetes-int-or-string': true },
                    mode: { type: 'string', enum: ['fast', 'slow'], default: 'slow' },
                    extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                  },
                },
                status: {
                  type: 'object',
                  properties: {
                    replicas: { type: 'integer' },
                    selector: { type: 'string' },
                    conditions: { type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, status: { type: 'string' } } } },
                  },
                },
              },
            },
          },
        },
        { name: 'v1beta1', served: true, storage: false, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } },
      ],
    },
  };
}

describe('CustomResourceDefinitions', () => {
  let k: Kubicle;

  before(async () => {
    k = await startKubicle();
  });

  after(async () => {
    await cleanup(k);
  });

  for (const [version, plural, kind, short] of [
    ['1.27', 'crontabs', 'CronTab', 'ct'],
    ['1.33', 'backups', 'Backup', 'bk'],
  ] as const) {
    it(`lives its whole life with kubectl ${version}`, async () => {
      const kc = await kubectlFor(k, version);
      const ok = mustSucceed(kc);
      await ok(['apply', '-f', '-'], JSON.stringify(crd(plural, kind, short)));
      await ok(['wait', '--for', 'condition=established', `crd/${plural}.${group}`, '--timeout=20s']);
      const status = JSON.parse(await ok(['get', 'crd', `${plural}.${group}`, '-o', 'json'])).status;
      assert.deepEqual(
        status.conditions.map((c: { type: string; status: string }) => `${c.type}=${c.status}`),
        ['NamesAccepted=True', 'Established=True'],
      );
      assert.deepEqual(status.storedVersions, ['v1']);
      assert.match(await ok(['api-resources', '--api-group', group]), new RegExp(`${plural}\\s+${short}\\s+${group}/v1\\s+true\\s+${kind}`));

      // Defaults filled, unknown fields pruned (kubectl's own check off), preserved where asked.
      const obj = { apiVersion: `${group}/v1`, kind, metadata: { name: 'nightly' }, spec: { cronSpec: '0 3 * * *', image: 'busybox', port: 'http', bogus: 1, extra: { any: [1, { x: 2 }] } } };
      await ok(['apply', '--validate=false', '-f', '-'], JSON.stringify(obj));
      const stored = JSON.parse(await ok(['get', short, 'nightly', '-o', 'json']));
      assert.equal(stored.spec.replicas, 1, 'defaulted');
      assert.equal(stored.spec.mode, 'slow', 'defaulted');
      assert.equal(stored.spec.bogus, undefined, 'pruned');
      assert.deepEqual(stored.spec.extra, { any: [1, { x: 2 }] }, 'preserved');
      assert.equal(stored.metadata.generation, 1);

      // Strict field validation (kubectl's default) names the unknown field.
      const strict = await kc(['apply', '-f', '-'], { input: JSON.stringify({ ...obj, metadata: { name: 'strict' } }) });
      assert.notEqual(strict.code, 0);
      assert.match(strict.stderr, /unknown field "spec.bogus"/);

      // The schema's rules, with upstream's wording.
      const bad = await kc(['create', '-f', '-'], {
        input: JSON.stringify({ apiVersion: `${group}/v1`, kind, metadata: { name: 'bad' }, spec: { cronSpec: 'never', replicas: 11, image: 7, port: [1], mode: 'medium' } }),
      });
      assert.notEqual(bad.code, 0);
      for (const m of [
        /spec.cronSpec: Invalid value: "never": spec.cronSpec in body should match/,
        /spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10/,
        /spec.image: Invalid value: "integer": spec.image in body must be of type string: "integer"/,
        /spec.port: Invalid value: "array": spec.port in body must be of type integer or string/,
        /spec.mode: Unsupported value: "medium": supported values: "fast", "slow"/,
      ]) {
        assert.match(bad.stderr, m);
      }
      const missing = await kc(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: `${group}/v1`, kind, metadata: { name: 'bad' }, spec: {} }) });
      assert.match(missing.stderr, /spec.cronSpec: Required value/);
      assert.match((await kc(['get', short, 'bad'])).stderr, /not found/, 'nothing was written');

      // Status and scale subresources; generation counts spec changes only.
      await ok(['patch', short, 'nightly', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { replicas: 2, selector: 'app=nightly', conditions: [{ type: 'Ready', status: 'True' }] } })]);
      await ok(['patch', short, 'nightly', '--type=merge', '-p', JSON.stringify({ status: { replicas: 9 } })]);
      let now = JSON.parse(await ok(['get', short, 'nightly', '-o', 'json']));
      assert.equal(now.status.replicas, 2, 'a main write leaves status alone');
      assert.equal(now.metadata.generation, 1);
      await ok(['scale', short, 'nightly', '--replicas=4']);
      now = JSON.parse(await ok(['get', short, 'nightly', '-o', 'json']));
      assert.equal(now.spec.replicas, 4);
      assert.equal(now.metadata.generation, 2);
      const scale = JSON.parse(await ok(['get', '--raw', `/apis/${group}/v1/namespaces/default/${plural}/nightly/scale`]));
      assert.deepEqual(scale.status, { replicas: 2, selector: 'app=nightly' });

      // Printer columns, short names and the "all" category.
      const table = await ok(['get', plural]);
      assert.match(table, /^NAME\s+SCHEDULE\s+REPLICAS\s+READY\s+AGE\n/);
      assert.match(table, /\nnightly\s+0 3 \* \* \*\s+4\s+True\s+\d+s\n/);
      assert.match(await ok(['get', 'all']), new RegExp(`${kind.toLowerCase()}.${group}/nightly`));

      // Both versions serve the object stored once, in v1.
      const beta = JSON.parse(await ok(['get', `${plural}.v1beta1.${group}`, 'nightly', '-o', 'json']));
      assert.equal(beta.apiVersion, `${group}/v1beta1`);
      assert.equal(beta.spec.cronSpec, '0 3 * * *');

      // explain reads the CRD's schema.
      const explained = await ok(['explain', `${plural}.spec`]);
      assert.match(explained, /What to run and when\./);
      assert.match(explained, /cronSpec\t<string> -required-\n\s+The schedule, in cron format\./);
      assert.match(await ok(['explain', plural, '--recursive']), /spec\t<Object>\n\s+cronSpec\t<string>/);

      // Deleting the CRD deletes its objects, and the resource goes away.
      await ok(['delete', 'crd', `${plural}.${group}`, '--timeout=30s']);
      const gone = await kc(['get', plural]);
      assert.notEqual(gone.code, 0);
      assert.doesNotMatch(await ok(['api-resources']), new RegExp(`\\b${plural}\\b`));
      const api = await rawClient(k);
      assert.equal((await api.call('GET', `/apis/${group}/v1/namespaces/default/${plural}`)).status, 404);
    });
  }

  it('recreating a CRD starts empty; deleting a namespace deletes its custom objects', async () => {
    const ok = mustSucceed(await kubectlFor(k, '1.33'));
    await ok(['apply', '-f', '-'], JSON.stringify(crd('widgets', 'Widget', 'wd')));
    await ok(['wait', '--for', 'condition=established', `crd/widgets.${group}`, '--timeout=20s']);
    await ok(['create', 'namespace', 'shop']);
    await ok(['apply', '-n', 'shop', '-f', '-'], JSON.stringify({ apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'w1' }, spec: { cronSpec: '* * * * *' } }));
    await ok(['delete', 'namespace', 'shop', '--timeout=30s']);
    const api = await rawClient(k);
    await eventually(async () => (await api.call('GET', `/apis/${group}/v1/widgets`)).json.items?.length === 0, 'the namespace controller deleted the widget');
  });

  it('collects garbage through custom resources, as owners and as dependents, in all three modes', async () => {
    const kc = await kubectlFor(k, '1.33');
    const ok = mustSucceed(kc);
    await ok(['apply', '-f', '-'], JSON.stringify(crd('gadgets', 'Gadget', 'gd')));
    await ok(['wait', '--for', 'condition=established', `crd/gadgets.${group}`, '--timeout=20s']);
    const gadget = (name: string, owner?: { name: string; uid: string }) => ({
      apiVersion: `${group}/v1`,
      kind: 'Gadget',
      metadata: { name, ...(owner ? { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: owner.name, uid: owner.uid }] } : {}) },
      spec: { cronSpec: '* * * * *' },
    });
    const uidOf = async (what: string) => ok(['get', what, '-o', 'jsonpath={.metadata.uid}']);
    const ownedBy = (kind: string, name: string, uid: string, blockOwnerDeletion = false) => ({
      ownerReferences: [{ apiVersion: `${group}/v1`, kind, name, uid, ...(blockOwnerDeletion ? { blockOwnerDeletion: true } : {}) }],
    });
    const gone = async (what: string) => (await kc(['get', what])).code !== 0;

    // Background: a ConfigMap owned by a custom object goes with it.
    await ok(['create', '-f', '-'], JSON.stringify(gadget('owner')));
    const ownerUid = await uidOf('gadget/owner');
    await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'part', ...ownedBy('Gadget', 'owner', ownerUid) } }));
    await ok(['delete', 'gadget', 'owner']);
    await eventually(() => gone('configmap/part'), 'the ConfigMap owned by the deleted gadget was collected');

    // A custom object owned by a ConfigMap goes with the ConfigMap.
    await ok(['create', 'configmap', 'holder']);
    await ok(['create', '-f', '-'], JSON.stringify(gadget('dependent', { name: 'holder', uid: await uidOf('configmap/holder') })));
    await ok(['delete', 'configmap', 'holder']);
    await eventually(() => gone('gadget/dependent'), 'the gadget owned by the deleted ConfigMap was collected');

    // Foreground: the owner waits for its blocking dependent, then goes.
    await ok(['create', '-f', '-'], JSON.stringify(gadget('fore')));
    await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fore-part', finalizers: ['example.com/hold'], ...ownedBy('Gadget', 'fore', await uidOf('gadget/fore'), true) } }));
    await ok(['delete', 'gadget', 'fore', '--cascade=foreground', '--wait=false']);
    await eventually(async () => (await ok(['get', 'configmap', 'fore-part', '-o', 'jsonpath={.metadata.deletionTimestamp}'])) !== '', 'the dependent is being deleted');
    assert.match(await ok(['get', 'gadget', 'fore', '-o', 'jsonpath={.metadata.finalizers}']), /foregroundDeletion/, 'the owner waits for its dependent');
    await ok(['patch', 'configmap', 'fore-part', '--type=merge', '-p', '{"metadata":{"finalizers":null}}']);
    await eventually(() => gone('gadget/fore'), 'the owner went after its dependent');

    // Orphan: the dependent stays, without its reference.
    await ok(['create', '-f', '-'], JSON.stringify(gadget('parent')));
    await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kept', ...ownedBy('Gadget', 'parent', await uidOf('gadget/parent')) } }));
    await ok(['delete', 'gadget', 'parent', '--cascade=orphan']);
    await eventually(() => gone('gadget/parent'), 'the orphaning owner went');
    assert.equal(await ok(['get', 'configmap', 'kept', '-o', 'jsonpath={.metadata.ownerReferences}']), '', 'the dependent was orphaned, not deleted');

    // Deleting the definition deletes its objects, and their dependents follow.
    await ok(['create', '-f', '-'], JSON.stringify(gadget('last')));
    await ok(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'last-part', ...ownedBy('Gadget', 'last', await uidOf('gadget/last')) } }));
    await ok(['delete', 'crd', `gadgets.${group}`, '--timeout=30s']);
    await eventually(() => gone('configmap/last-part'), 'the dependent of a custom object deleted with its definition was collected');
    await ok(['delete', 'configmap', 'kept']);
  });

  it('evaluates x-kubernetes-validations rules: errors as upstream, transition rules, ratcheting, bad rules refused', async () => {
    const rulesGroup = 'rules.example.com';
    const schema = {
      type: 'object',
      'x-kubernetes-validations': [{ rule: "self.metadata.name.startsWith('w-')", message: 'name must start with w-' }],
      properties: {
        spec: {
          type: 'object',
          'x-kubernetes-validations': [
            { rule: 'self.minReplicas <= self.replicas', message: 'replicas should be at least minReplicas' },
            { rule: 'self.replicas >= oldSelf.replicas', messageExpression: "'replicas may not shrink below ' + string(oldSelf.replicas)", reason: 'FieldValueForbidden', fieldPath: '.replicas' },
          ],
          properties: {
            replicas: { type: 'integer' },
            minReplicas: { type: 'integer' },
            tier: { type: 'string', maxLength: 16, 'x-kubernetes-validations': [{ rule: "self.matches('^[a-z]+$') && self.lowerAscii() == self" }, { rule: 'self == oldSelf', message: 'tier is immutable' }] },
            ports: {
              type: 'array',
              maxItems: 16,
              'x-kubernetes-list-type': 'map',
              'x-kubernetes-list-map-keys': ['name'],
              items: { type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 15 }, port: { type: 'integer' } }, 'x-kubernetes-validations': [{ rule: 'self.port > 1024 || self.name == "legacy"' }] },
              'x-kubernetes-validations': [{ rule: 'self.map(p, p.port).isSorted()', message: 'ports must be sorted' }],
            },
          },
        },
      },
    };
    const def = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `widgets.${rulesGroup}` },
      spec: { group: rulesGroup, scope: 'Namespaced', names: { plural: 'widgets', singular: 'widget', kind: 'Widget' }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: schema } }] },
    };
    const kc = await kubectlFor(k, '1.33');
    await mustSucceed(kc)(['apply', '-f', '-'], JSON.stringify(def));
    await mustSucceed(kc)(['wait', '--for', 'condition=established', `crd/widgets.${rulesGroup}`, '--timeout=20s']);
    const widget = (name: string, spec: object) => JSON.stringify({ apiVersion: `${rulesGroup}/v1`, kind: 'Widget', metadata: { name }, spec });
    for (const version of ['1.27', '1.33'] as const) {
      const kv = await kubectlFor(k, version);
      const bad = await kv(['create', '-f', '-'], { input: widget('x', { replicas: 1, minReplicas: 2, tier: 'Gold', ports: [{ name: 'a', port: 80 }, { name: 'legacy', port: 70 }] }) });
      assert.notEqual(bad.code, 0);
      for (const m of [
        /The Widget "x" is invalid/,
        /<nil>: Invalid value: "object": name must start with w-/,
        /spec: Invalid value: "object": replicas should be at least minReplicas/,
        /spec.tier: Invalid value: "string": failed rule: self.matches\('\^\[a-z\]\+\$'\) && self.lowerAscii\(\) == self/,
        /spec.ports\[0\]: Invalid value: "object": failed rule: self.port > 1024 \|\| self.name == "legacy"/,
        /spec.ports: Invalid value: "array": ports must be sorted/,
      ]) {
        assert.match(bad.stderr, m, version);
      }
      assert.doesNotMatch(bad.stderr, /ports\[1\]/, 'the legacy port passes its rule');
      assert.match((await kv(['get', `widgets.${rulesGroup}`, 'x'])).stderr, /not found/, 'nothing was written');
    }
    const ok = mustSucceed(kc);
    await ok(['create', '-f', '-'], widget('w-1', { replicas: 3, minReplicas: 1, tier: 'gold', ports: [{ name: 'a', port: 2000 }] }));
    // Transition rules: oldSelf is the stored value; the messageExpression and reason shape the error.
    const shrink = await kc(['patch', `widgets.${rulesGroup}`, 'w-1', '--type=merge', '-p', '{"spec":{"replicas":2,"tier":"silver"}}']);
    assert.notEqual(shrink.code, 0);
    assert.match(shrink.stderr, /spec.replicas: Forbidden: replicas may not shrink below 3/);
    assert.match(shrink.stderr, /spec.tier: Invalid value: "string": tier is immutable/);
    await ok(['patch', `widgets.${rulesGroup}`, 'w-1', '--type=merge', '-p', '{"spec":{"replicas":5}}']);
    // A missing field is a runtime error, as upstream's "no such key".
    const missing = await kc(['patch', `widgets.${rulesGroup}`, 'w-1', '--type=json', '-p', '[{"op":"remove","path":"/spec/minReplicas"}]']);
    assert.match(missing.stderr, /spec: Invalid value: "object": no such key: minReplicas evaluating rule: replicas should be at least minReplicas/);
    // Ratcheting: a value that broke a rule added later may stay as it is while other fields change.
    const tightened = JSON.parse(JSON.stringify(def));
    tightened.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.replicas['x-kubernetes-validations'] = [{ rule: 'self % 2 == 0', message: 'replicas must be even' }];
    await ok(['apply', '-f', '-'], JSON.stringify(tightened));
    await eventually(async () => /replicas must be even/.test((await kc(['patch', `widgets.${rulesGroup}`, 'w-1', '--type=merge', '-p', '{"spec":{"replicas":7}}'])).stderr), 'the new rule applies');
    await ok(['patch', `widgets.${rulesGroup}`, 'w-1', '--type=merge', '-p', '{"spec":{"minReplicas":2}}']);
    assert.equal(JSON.parse(await ok(['get', `widgets.${rulesGroup}`, 'w-1', '-o', 'json'])).spec.replicas, 5);

    // Rules that do not compile, or cost too much, are refused with the CRD.
    const api = await rawClient(k);
    const withRule = (name: string, props: object, rules: object[]) =>
      JSON.stringify({
        ...def,
        metadata: { name: `${name}s.${rulesGroup}` },
        spec: { ...def.spec, names: { plural: `${name}s`, kind: name[0].toUpperCase() + name.slice(1) }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: props, 'x-kubernetes-validations': rules } } } } }] },
      });
    const refused: [string, object, object[], RegExp][] = [
      ['undefinedfield', { a: { type: 'string' } }, [{ rule: 'self.b == 1' }], /x-kubernetes-validations\[0\].rule: Invalid value: apiextensions.ValidationRule\{Rule:"self.b == 1".*compilation failed: ERROR: <input>:1:5: undefined field 'b'/],
      ['syntax', { a: { type: 'string' } }, [{ rule: 'self.a ==' }], /x-kubernetes-validations\[0\].rule: .*compilation failed: ERROR: <input>:1:/],
      ['nofunc', { a: { type: 'string' } }, [{ rule: 'launch(self.a)' }], /undeclared reference to 'launch'/],
      ['quadratic', { l: { type: 'array', items: { type: 'string' } } }, [{ rule: 'self.l.all(x, self.l.all(y, x == y))' }], /x-kubernetes-validations\[0\].rule: Forbidden: estimated rule cost exceeds budget by factor of more than 100x/],
      ['badpath', { a: { type: 'string' } }, [{ rule: 'true', fieldPath: '.nope' }], /fieldPath: Invalid value: ".nope"/],
    ];
    for (const [name, props, rules, message] of refused) {
      const r = await api.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', withRule(name, props, rules));
      assert.equal(r.status, 422, `${name}: ${r.text.slice(0, 300)}`);
      assert.match(r.json.message, message, name);
    }
    // Bounded, the same walk is cheap enough: maxItems is what upstream's estimate asks for too.
    const bounded = await api.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', withRule('bounded', { l: { type: 'array', maxItems: 100, items: { type: 'string', maxLength: 64 } } }, [{ rule: 'self.l.all(x, self.l.exists_one(y, x == y))', message: 'no duplicates' }]));
    assert.equal(bounded.status, 201, bounded.text);
    // A rule's regex is RE2 too: a pattern that backtracking engines take exponential time on answers at once.
    const redos = await api.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', withRule('redosrule', { s: { type: 'string', maxLength: 10000 } }, [{ rule: "self.s.matches('^(a+)+$')" }]));
    assert.equal(redos.status, 201, redos.text);
    await eventually(async () => (await api.call('GET', `/apis/${rulesGroup}/v1`)).json?.resources?.some((r: { name: string }) => r.name === 'redosrules'), 'redosrules served');
    const evil = await api.call('POST', `/apis/${rulesGroup}/v1/namespaces/default/redosrules`, JSON.stringify({ apiVersion: `${rulesGroup}/v1`, kind: 'Redosrule', metadata: { name: 'r' }, spec: { s: `${'a'.repeat(5000)}b` } }));
    assert.equal(evil.status, 422, evil.text.slice(0, 300));
    assert.match(evil.json.message, /spec: Invalid value: "object": failed rule: self.s.matches/);
    assert.equal((await api.call('GET', '/healthz')).status, 200);
  });

  it('refuses hostile schemas and bodies with clear errors and stays up', async () => {
    const api = await rawClient(k);
    const hostile = (name: string, schema: object) =>
      JSON.stringify({
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `${name}s.h.example.com` },
        spec: { group: 'h.example.com', scope: 'Namespaced', names: { plural: `${name}s`, kind: name[0].toUpperCase() + name.slice(1) }, versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: schema } }] },
      });
    let deep: Record<string, unknown> = { type: 'object' };
    const root = deep;
    for (let i = 0; i < 100; i++) {
      const next = { type: 'object' };
      deep.properties = { a: next };
      deep = next;
    }
    const cases: [string, object, RegExp][] = [
      ['deep', root, /must not be nested deeper than 64 levels/],
      ['enum', { type: 'object', properties: { x: { type: 'string', enum: Array.from({ length: 50_000 }, (_, i) => String(i)) } } }, /enum: Too many: 50000: must have at most 2000 items/],
      ['regex', { type: 'object', properties: { x: { type: 'string', pattern: '(?<=a)b' } } }, /pattern: Invalid value: "\(\?<=a\)b": must be a valid regular expression/],
      ['untyped', { type: 'object', properties: { x: { properties: {} } } }, /properties\[x\].type: Required value: must not be empty for specified object fields/],
      ['ref', { type: 'object', properties: { x: { $ref: '#/definitions/y' } } }, /\$ref: Forbidden: \$ref is not supported/],
      ['badroot', { type: 'string' }, /openAPIV3Schema.type: Invalid value: "string": must be object at the root/],
    ];
    for (const [name, schema, message] of cases) {
      const r = await api.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', hostile(name, schema));
      assert.equal(r.status, 422, `${name}: ${r.text.slice(0, 300)}`);
      assert.equal(r.json.reason, 'Invalid');
      assert.match(r.json.message, message, name);
    }
    assert.equal((await api.call('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions')).json.items.filter((c: { metadata: { name: string } }) => c.metadata.name.endsWith('h.example.com')).length, 0, 'nothing was written');

    // A pattern that backtracking engines take exponential time on: RE2 answers at once.
    const redos = await api.call('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', hostile('redos', { type: 'object', properties: { x: { type: 'string', pattern: '^(a+)+$' } } }));
    assert.equal(redos.status, 201, redos.text);
    await eventually(async () => (await api.call('GET', '/apis/h.example.com/v1')).status === 200, 'redos served');
    const evil = await api.call('POST', '/apis/h.example.com/v1/namespaces/default/redoss', JSON.stringify({ apiVersion: 'h.example.com/v1', kind: 'Redos', metadata: { name: 'r' }, x: `${'a'.repeat(5000)}b` }));
    assert.equal(evil.status, 422);
    assert.match(evil.json.message, /x in body should match/);

    // Bodies nested deeper than the server walks are refused before anything else.
    const nested = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const deepBody = await api.call('POST', '/apis/h.example.com/v1/namespaces/default/redoss', `{"apiVersion":"h.example.com/v1","kind":"Redos","metadata":{"name":"d"},"x":${nested}}`);
    assert.equal(deepBody.status, 400);
    assert.match(deepBody.json.message, /nested too deeply/);
    assert.equal((await api.call('GET', '/healthz')).status, 200);
  });
});
