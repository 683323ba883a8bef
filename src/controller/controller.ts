/** The controller's reconcilers together: XdpBalancers (agent DaemonSets) and LoadBalancerVips. */
import type { KubeConfig } from '@kubernetes/client-node';
import { BalancerController } from './balancer-controller.js';
import { EventRecorder } from './events.js';
import { ControllerMetrics } from './metrics.js';
import { VipController } from './vip-controller.js';

export interface ControllerOptions {
  /** Namespace of the agent DaemonSets. */
  namespace: string;
  /** Who writes events (the pod name). */
  identity: string;
  metrics?: ControllerMetrics;
  /** Seconds between resyncs of every VIP; default DEFAULT_RESYNC_SECONDS. */
  resyncSeconds?: number;
  /** Entries a VIP's status.backends may hold; the CRD's limit unless a test says fewer. */
  maxListedBackends?: number;
}

export class Controller {
  readonly metrics: ControllerMetrics;
  readonly balancers: BalancerController;
  readonly vips: VipController;
  readonly events: EventRecorder;

  constructor(kc: KubeConfig, opts: ControllerOptions) {
    this.metrics = opts.metrics ?? new ControllerMetrics();
    this.events = new EventRecorder(kc, opts.identity);
    this.balancers = new BalancerController(kc, {
      namespace: opts.namespace,
      metrics: this.metrics,
      events: this.events,
      onBalancerChange: (b) => this.vips.balancerChanged(b),
    });
    this.vips = new VipController(kc, { balancers: this.balancers, events: this.events, metrics: this.metrics,
      resyncSeconds: opts.resyncSeconds, maxListedBackends: opts.maxListedBackends });
  }

  /** Balancers first: VIP conditions depend on their agents. */
  async start(): Promise<void> {
    await this.balancers.start();
    await this.vips.start();
  }

  async stop(): Promise<void> {
    await this.vips.stop();
    await this.balancers.stop();
  }
}
