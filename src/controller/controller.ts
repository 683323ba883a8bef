/** The controller's reconcilers together: XdpBalancers (agent DaemonSets), LoadBalancerVips (with address pools) and Services of type LoadBalancer. */
import type { KubeConfig } from '@kubernetes/client-node';
import { BalancerController } from './balancer-controller.js';
import { EventRecorder } from './events.js';
import type { ImageAllowlist } from './image-allowlist.js';
import { ControllerMetrics } from './metrics.js';
import { EndpointSlices } from './services/endpoint-slices.js';
import { ServiceController } from './services/service-controller.js';
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
  /** Serve Services of type LoadBalancer that name no loadBalancerClass too. */
  serveServicesWithoutClass?: boolean;
  /** The images XdpBalancers may run (--allowed-images); absent: any (tests only). */
  images?: ImageAllowlist;
}

export class Controller {
  readonly metrics: ControllerMetrics;
  readonly balancers: BalancerController;
  readonly vips: VipController;
  readonly events: EventRecorder;
  readonly endpointSlices: EndpointSlices;
  readonly services: ServiceController;

  constructor(kc: KubeConfig, opts: ControllerOptions) {
    this.metrics = opts.metrics ?? new ControllerMetrics();
    this.events = new EventRecorder(kc, opts.identity);
    this.balancers = new BalancerController(kc, {
      namespace: opts.namespace,
      metrics: this.metrics,
      events: this.events,
      images: opts.images,
      onBalancerChange: (b) => this.vips.balancerChanged(b),
    });
    this.endpointSlices = new EndpointSlices(kc);
    this.vips = new VipController(kc, { balancers: this.balancers, endpointSlices: this.endpointSlices, events: this.events, metrics: this.metrics,
      resyncSeconds: opts.resyncSeconds, maxListedBackends: opts.maxListedBackends, agentNamespace: opts.namespace, onVipChange: (v) => this.services.vipChanged(v) });
    this.services = new ServiceController(kc, {
      vips: { vip: (ns, name) => this.vips.vip(ns, name), vips: () => this.vips.allVips() },
      endpointSlices: this.endpointSlices, serveWithoutClass: opts.serveServicesWithoutClass, events: this.events, metrics: this.metrics,
    });
  }

  /** Balancers first: VIP conditions depend on their agents. */
  async start(): Promise<void> {
    await this.balancers.start();
    await this.endpointSlices.start();
    await this.vips.start();
    await this.services.start();
  }

  async stop(): Promise<void> {
    await this.services.stop();
    await this.vips.stop();
    await this.endpointSlices.stop();
    await this.balancers.stop();
  }
}
