import { type KubeClient, type Obj, resourcePath } from './kube-client.js';

/**
 * Records a core/v1 Event about an object, as controllers and the scheduler report what they
 * did ("Scheduled", "SuccessfulCreate") or could not do ("FailedScheduling").
 */
export async function recordEvent(client: KubeClient, obj: Obj, apiVersion: string, kind: string, component: string, type: string, reason: string, message: string): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  await client.create(resourcePath({ version: 'v1', plural: 'events', namespace: obj.metadata.namespace }), {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { generateName: `${obj.metadata.name}.`, namespace: obj.metadata.namespace },
    involvedObject: { apiVersion, kind, name: obj.metadata.name, namespace: obj.metadata.namespace, uid: obj.metadata.uid, resourceVersion: obj.metadata.resourceVersion },
    reason,
    message,
    type,
    source: { component },
    reportingComponent: component,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  });
}
