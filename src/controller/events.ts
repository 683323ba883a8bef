/**
 * Kubernetes Events on the objects the controller manages, so `kubectl
 * describe` tells a user what changed and why. Recording is best effort: a
 * failed event never fails a reconcile. A namespace being deleted refuses
 * new objects, Events too: those are dropped quietly, and the namespace is
 * left alone for a while rather than asked again on every change.
 */
import { CoreV1Api, type KubeConfig, type V1ObjectMeta } from '@kubernetes/client-node';
import { errorFields, isNamespaceTerminating } from '../lib/api-error.js';
import { componentLog } from '../lib/log.js';

const log = componentLog('events');

export const EVENT_COMPONENT = 'xdplb-controller';

export interface EventTarget {
  apiVersion?: string;
  kind?: string;
  metadata: V1ObjectMeta;
}

export type EventType = 'Normal' | 'Warning';

/**
 * How long events for a namespace that is being deleted are dropped without
 * asking: long enough not to hammer it, short enough for a namespace deleted
 * and created again under the same name to get its events back soon.
 */
const TERMINATING_HOLD_MS = 30_000;

export class EventRecorder {
  private readonly core: CoreV1Api;
  /** Namespaces found terminating, until when their events are dropped. */
  private readonly terminating = new Map<string, number>();
  /** Events created, dropped (namespace terminating) and failed otherwise. */
  readonly counts = { recorded: 0, dropped: 0, failed: 0 };

  constructor(kc: KubeConfig, private readonly instance: string) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  record(target: EventTarget, type: EventType, reason: string, message: string): void {
    const namespace = target.metadata.namespace ?? 'default';
    const now = new Date();
    const held = this.terminating.get(namespace);
    if (held !== undefined && held > now.getTime()) {
      this.counts.dropped++;
      return;
    }
    this.terminating.delete(namespace);
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
    }).then(() => {
      this.counts.recorded++;
    }, (err: unknown) => {
      if (isNamespaceTerminating(err)) {
        this.counts.dropped++;
        this.terminating.set(namespace, Date.now() + TERMINATING_HOLD_MS);
        log.debug({ reason, namespace }, 'namespace is being deleted: event dropped');
        return;
      }
      this.counts.failed++;
      log.warn({ reason, object: `${namespace}/${target.metadata.name}`, ...errorFields(err) }, 'could not record event');
    });
  }
}
