import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cleanup, type Kubicle, kubectlFor, mustSucceed, startKubicle } from '../support/kubicle.js';

/** Jobs and CronJobs on simulated nodes, driven by stock kubectl 1.33. */
let k: Kubicle;
let kc: Awaited<ReturnType<typeof kubectlFor>>;
const ok = (args: string[], input?: string) => mustSucceed(kc)(args, input);
const job = (name: string, spec: Record<string, unknown>, annotations: Record<string, string> = {}) =>
  JSON.stringify({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name },
    spec: { ...spec, template: { metadata: { annotations }, spec: { restartPolicy: 'Never', containers: [{ name: 'work', image: 'busybox', command: ['true'] }] } } },
  });

before(async () => {
  // Upstream's first retry comes after 10 s; the test shortens the back-off base.
  k = await startKubicle({ args: ['--simulate-nodes', '2'], env: { KUBICLE_JOB_BACKOFF_MS: '200' } });
  kc = await kubectlFor(k, '1.33');
});
after(async () => {
  await cleanup(k);
});

describe('jobs', () => {
  it('runs to completion with parallelism', async () => {
    await ok(['create', '-f', '-'], job('done', { completions: 3, parallelism: 2 }));
    await ok(['wait', '--for=condition=Complete', 'job/done', '--timeout=30s']);
    const j = JSON.parse(await ok(['get', 'job', 'done', '-o', 'json']));
    assert.equal(j.status.succeeded, 3);
    assert.ok(j.status.completionTime);
    assert.match(await ok(['get', 'job', 'done']), /done\s+Complete\s+3\/3/);
    assert.equal((await ok(['get', 'pods', '-l', 'job-name=done', '-o', 'name'])).trim().split('\n').length, 3);
  });

  it('fails after backoffLimit with BackoffLimitExceeded', async () => {
    await ok(['create', '-f', '-'], job('flaky', { backoffLimit: 1 }, { 'kubicle.io/simulated-exit-code': '1' }));
    await ok(['wait', '--for=condition=Failed', 'job/flaky', '--timeout=30s']);
    const j = JSON.parse(await ok(['get', 'job', 'flaky', '-o', 'json']));
    assert.equal(j.status.failed, 2);
    assert.equal(j.status.conditions.find((c: { type: string }) => c.type === 'Failed').reason, 'BackoffLimitExceeded');
    assert.match(await ok(['describe', 'job', 'flaky']), /BackoffLimitExceeded/);
  });

  it('a podFailurePolicy FailJob rule fails at once', async () => {
    const body = JSON.parse(job('policy', { backoffLimit: 5, podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [42] } }] } }, { 'kubicle.io/simulated-exit-code': '42' }));
    await ok(['create', '-f', '-'], JSON.stringify(body));
    await ok(['wait', '--for=condition=Failed', 'job/policy', '--timeout=30s']);
    const j = JSON.parse(await ok(['get', 'job', 'policy', '-o', 'json']));
    assert.equal(j.status.conditions.find((c: { type: string }) => c.type === 'Failed').reason, 'PodFailurePolicy');
    assert.equal(j.status.failed, 1);
  });

  it('Indexed completion gives each pod its index', async () => {
    await ok(['create', '-f', '-'], job('indexed', { completions: 3, parallelism: 3, completionMode: 'Indexed' }));
    await ok(['wait', '--for=condition=Complete', 'job/indexed', '--timeout=30s']);
    assert.equal(await ok(['get', 'job', 'indexed', '-o', 'jsonpath={.status.completedIndexes}']), '0-2');
    const pods = JSON.parse(await ok(['get', 'pods', '-l', 'job-name=indexed', '-o', 'json'])).items;
    const indexes = pods.map((p: { metadata: { annotations: Record<string, string> } }) => p.metadata.annotations['batch.kubernetes.io/job-completion-index']).sort();
    assert.deepEqual(indexes, ['0', '1', '2']);
    assert.ok(pods.every((p: { spec: { containers: { env: { name: string }[] }[] } }) => p.spec.containers[0].env.some((e) => e.name === 'JOB_COMPLETION_INDEX')));
  });

  it('activeDeadlineSeconds stops a job that runs too long', async () => {
    await ok(['create', '-f', '-'], job('slow', { activeDeadlineSeconds: 2 }, { 'kubicle.io/simulated-runtime-seconds': '60' }));
    await ok(['wait', '--for=condition=Failed', 'job/slow', '--timeout=30s']);
    assert.equal(await ok(['get', 'job', 'slow', '-o', 'jsonpath={.status.conditions[?(@.type=="Failed")].reason}']), 'DeadlineExceeded');
  });

  it('suspend holds pods back; resuming runs them; ttlSecondsAfterFinished deletes the job', async () => {
    await ok(['create', '-f', '-'], job('later', { suspend: true, ttlSecondsAfterFinished: 1 }));
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await ok(['get', 'pods', '-l', 'job-name=later', '-o', 'name'])).trim(), '');
    assert.match(await ok(['get', 'job', 'later']), /Suspended/);
    await ok(['patch', 'job', 'later', '--type=merge', '-p', '{"spec":{"suspend":false}}']);
    await ok(['wait', '--for=delete', 'job/later', '--timeout=30s']);
  });
});

describe('cronjobs', () => {
  it('creates a job at the next scheduled minute and keeps history', async () => {
    await ok(['create', 'cronjob', 'tick', '--image=busybox', '--schedule=* * * * *', '--', 'true']);
    const deadline = Date.now() + 75_000;
    let jobs: { metadata: { name: string; ownerReferences: { kind: string }[] } }[] = [];
    while (!jobs.length) {
      assert.ok(Date.now() < deadline, 'no job within a minute');
      await new Promise((r) => setTimeout(r, 500));
      jobs = JSON.parse(await ok(['get', 'jobs', '-o', 'json'])).items.filter((j: { metadata: { name: string } }) => j.metadata.name.startsWith('tick-'));
    }
    assert.match(jobs[0].metadata.name, /^tick-\d+$/);
    assert.equal(jobs[0].metadata.ownerReferences[0].kind, 'CronJob');
    await ok(['wait', '--for=condition=Complete', `job/${jobs[0].metadata.name}`, '--timeout=30s']);
    const cj = JSON.parse(await ok(['get', 'cronjob', 'tick', '-o', 'json']));
    assert.ok(cj.status.lastScheduleTime);
    assert.match(await ok(['get', 'cronjob', 'tick']), /tick\s+\* \* \* \* \*\s+<none>\s+False\s+\d\s+\d+s/);
  });
});
