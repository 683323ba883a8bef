/**
 * Kubernetes Events on the objects the controller manages, so `kubectl
 * describe` tells a user what changed and why. Recording is best effort: a
 * failed event never fails a reconcile.
 */
import { CoreV1Api, type KubeConfig, type V1ObjectMeta } from '@kubernetes/client-node';
import { errorFields } from '../lib/api-error.js';
import { componentLog } from '../lib/log.js';

const log = componentLog('events');

export const EVENT_COMPONENT = 'xdplb-controller';

export interface EventTarget {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
}

export type EventType = 'Normal' | 'Warning';

export class EventRecorder {
  private readonly core: CoreV1Api;

  constructor(kc: KubeConfig, private readonly instance: string) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  record(target: EventTarget, type: EventType, reason: string, message: string): void {
    const namespace = target.metadata.namespace ?? 'default';
    const now = new Date();
    this.core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { generateName: `${target.metadata.name}.`, namespace },
        involvedObject: {
          apiVersion: target.apiVersion,
          kind: target.kind,
          name: target.metadata.name,
          namespace: target.metadata.namespace,
          uid: target.metadata.uid,
          resourceVersion: target.metadata.resourceVersion,
        },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: EVENT_COMPONENT },
        reportingComponent: EVENT_COMPONENT,
        reportingInstance: this.instance,
      },
    }).catch((err: unknown) => log.warn({ reason, object: `${namespace}/${target.metadata.name}`, ...errorFields(err) }, 'could not record event'));
  }
}
